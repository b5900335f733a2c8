"""ROUGE for dialogue summaries that is correct for Korean as well as English.

rouge_score's default tokenizer keeps only [a-z0-9], so it deletes every Hangul character and two
identical Korean summaries score 0. Every score here goes through `RougeScorer` with a tokenizer we
choose: Korean morphemes (kiwipiepy or python-mecab-ko), rouge_score's own stemming tokenizer for
English, or plain whitespace. Speaker tags and masks such as `#Person1#` or `#PhoneNumber#` stay one
token in all of them.

    from sumtune.metrics import rouge, score_files, format_table
    result = rouge(["#Person1#은 내일 온다."], [["#Person1#은 내일 온다.", "내일 온다."]])
    print(format_table(score_files("outputs/run/predictions.csv", "data/dev.csv")))

Several references per example: `rouge1` etc. average the F1 over the references (the competition
rule), `rouge1_max` etc. take the best reference. `score` is rouge1 + rouge2 + rougeL.

Both sides are put in one Unicode form first (`normalization.normalize_text`: NFC, no zero-width
characters, full-width ASCII folded), so Korean predictions saved as NFD (macOS) score like their NFC twin.

No text makes scoring fail (it runs after training): a prediction that is empty or has no tokens
under the tokenizer scores 0 and is counted (`n_empty_predictions`; more than 10 % logs a warning that
says what it usually means); a reference without tokens is ignored, and an example left without any
reference is left out of the scores and counted (`n_skipped_examples`, with a warning).

Classification runs are scored by `classification_scores` (scikit-learn's metrics, imported when
called): accuracy, macro-F1 (their `score`), per-class precision/recall/F1, the confusion matrix, and
the majority-class baseline to read them against.

    result = classification_scores(["ham", "spam", "ham"], ["ham", "ham", "ham"], labels=["ham", "spam"])
    print(format_classification_table(result))
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Protocol

from rouge_score import rouge_scorer, tokenizers

from sumtune.normalization import normalize_text
from sumtune.records import read_records

logger = logging.getLogger(__name__)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
TAG_PATTERN = re.compile(r"#[A-Za-z][A-Za-z0-9_]*#")
HANGUL_PATTERN = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
KOREAN_EXTRA_HINT = "pip install 'sumtune[korean]'  (or: pip install kiwipiepy)"
MECAB_HINT = "pip install python-mecab-ko"
EMPTY_WARNING_SHARE = 0.10  # more empty predictions than this share of the examples logs a warning


class Tokenizer(Protocol):
    """What RougeScorer needs: `tokenize(text) -> list[str]`. `label` names it in results."""

    @property
    def label(self) -> str: ...

    def tokenize(self, text: str) -> list[str]: ...


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------


class _TagAwareTokenizer:
    """Splits out `#Tag#` tokens, then hands the text between them to `_tokenize_plain`."""

    name = ""

    @property
    def label(self) -> str:
        return self.name

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        for piece, is_tag in _split_tags(text):
            if is_tag:
                tokens.append(self._tag_token(piece))
            elif piece.strip():
                tokens.extend(self._tokenize_plain(piece))
        return tokens

    def _tag_token(self, tag: str) -> str:
        return tag

    def _tokenize_plain(self, text: str) -> list[str]:
        raise NotImplementedError


class WhitespaceTokenizer(_TagAwareTokenizer):
    """Splits on whitespace; keeps case and punctuation."""

    name = "whitespace"

    def _tokenize_plain(self, text: str) -> list[str]:
        return text.split()


class EnglishTokenizer(_TagAwareTokenizer):
    """rouge_score's own tokenizer with the Porter stemmer: lower-cased [a-z0-9] words."""

    name = "english"

    def __init__(self) -> None:
        self._default = tokenizers.DefaultTokenizer(use_stemmer=True)

    def _tag_token(self, tag: str) -> str:
        return tag.lower()

    def _tokenize_plain(self, text: str) -> list[str]:
        return self._default.tokenize(text)


class KiwiTokenizer(_TagAwareTokenizer):
    """Korean morphemes from kiwipiepy (`Kiwi().tokenize(text)` forms); keeps case and punctuation."""

    name = "kiwi"

    def __init__(self) -> None:
        self._kiwi = _kiwi_instance()

    def _tokenize_plain(self, text: str) -> list[str]:
        return [token.form for token in self._kiwi.tokenize(text)]


class MecabTokenizer(_TagAwareTokenizer):
    """Korean morphemes from python-mecab-ko (`MeCab().morphs(text)`)."""

    name = "mecab"

    def __init__(self) -> None:
        self._mecab = _mecab_instance()

    def _tokenize_plain(self, text: str) -> list[str]:
        return list(self._mecab.morphs(text))


class AutoLanguageTokenizer:
    """Korean morphemes (kiwi) for Hangul, the English tokenizer otherwise.

    `rouge()` decides per example, from the prediction and its references together, so that both
    sides of a comparison are always tokenized alike: an example whose reference is Korean is
    tokenized with kiwi even when the prediction holds no Hangul (say, only `#Person1#` tags).
    Used on its own, `tokenize` decides per text. Without kiwipiepy, Hangul falls back to
    whitespace with a one-time warning. `label` lists what was used, e.g. "auto(kiwi+english)".
    """

    def __init__(self) -> None:
        self._english = EnglishTokenizer()
        self._korean: _TagAwareTokenizer | None = None
        self._used: set[str] = set()

    @property
    def label(self) -> str:
        order = ("kiwi", "whitespace", "english")
        return "auto(" + "+".join(name for name in order if name in self._used) + ")"

    def tokenize(self, text: str) -> list[str]:
        return self.for_texts([text]).tokenize(text)

    def for_texts(self, texts: Sequence[str]) -> _TagAwareTokenizer:
        """The one tokenizer for all of `texts`: Korean if any of them contains Hangul."""
        has_hangul = any(isinstance(text, str) and HANGUL_PATTERN.search(text) for text in texts)
        chosen = self._korean_tokenizer() if has_hangul else self._english
        self._used.add(chosen.name)
        return chosen

    def _korean_tokenizer(self) -> _TagAwareTokenizer:
        if self._korean is None:
            try:
                self._korean = KiwiTokenizer()
            except ImportError:
                _warn_kiwi_missing()
                self._korean = WhitespaceTokenizer()
        return self._korean


TOKENIZERS: Mapping[str, Callable[[], Tokenizer]] = {
    "auto": AutoLanguageTokenizer,
    "kiwi": KiwiTokenizer,
    "mecab": MecabTokenizer,
    "whitespace": WhitespaceTokenizer,
    "english": EnglishTokenizer,
}


def get_tokenizer(name: str) -> Tokenizer:
    """A fresh tokenizer by name: one of auto, kiwi, mecab, whitespace, english."""
    try:
        factory = TOKENIZERS[name]
    except KeyError:
        raise ValueError(
            f"unknown ROUGE tokenizer {name!r}; choose one of: {', '.join(TOKENIZERS)}"
        ) from None
    return factory()


def _split_tags(text: str) -> Iterator[tuple[str, bool]]:
    """Yield (piece, is_tag) in order, e.g. "#Person1#은 왔다" -> ("#Person1#", True), ("은 왔다", False)."""
    start = 0
    for match in TAG_PATTERN.finditer(text):
        if match.start() > start:
            yield text[start : match.start()], False
        yield match.group(), True
        start = match.end()
    if start < len(text):
        yield text[start:], False


@functools.cache
def _kiwi_instance() -> Any:
    """One Kiwi per process: building it and loading its model takes seconds."""
    try:
        from kiwipiepy import Kiwi
    except ImportError as err:
        raise ImportError(f"the 'kiwi' ROUGE tokenizer needs kiwipiepy: {KOREAN_EXTRA_HINT}") from err
    return Kiwi()


@functools.cache
def _mecab_instance() -> Any:
    try:
        from mecab import MeCab
    except ImportError as err:
        raise ImportError(
            f"the 'mecab' ROUGE tokenizer needs python-mecab-ko: {MECAB_HINT}; "
            "or use tokenizer='kiwi' (pip install 'sumtune[korean]')"
        ) from err
    return MeCab()


@functools.cache
def _warn_kiwi_missing() -> None:
    """Log once per process (functools.cache) that Korean falls back to whitespace tokens."""
    logger.warning(
        "kiwipiepy is not installed, so Korean ROUGE uses whitespace tokens (particles stay attached "
        "and scores run lower); install it with: %s",
        KOREAN_EXTRA_HINT,
    )


class _CachingTokenizer:
    """Wraps a tokenizer so each distinct text is tokenized once per scoring call."""

    def __init__(self, inner: Tokenizer) -> None:
        self._inner = inner
        self._cache: dict[str, list[str]] = {}

    @property
    def label(self) -> str:
        return self._inner.label

    def tokenize(self, text: str) -> list[str]:
        tokens = self._cache.get(text)
        if tokens is None:
            tokens = self._cache[text] = self._inner.tokenize(text)
        return tokens


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RougeResult:
    """Corpus ROUGE F1 (0..1): mean over examples of the mean (and of the max) over references."""

    rouge1: float
    rouge2: float
    rougeL: float
    rouge1_max: float
    rouge2_max: float
    rougeL_max: float
    n_examples: int  # examples scored
    n_empty_predictions: int  # of those, predictions that were empty or had no tokens (each scored 0)
    n_skipped_examples: int  # examples left out: no reference with tokens
    tokenizer: str
    score: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "score", self.rouge1 + self.rouge2 + self.rougeL)

    def as_dict(self) -> dict[str, float | int | str]:
        return dataclasses.asdict(self)


def rouge(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    tokenizer: str = "auto",
    ids: Sequence[str] | None = None,
) -> RougeResult:
    """Score predictions against one reference each (list of str) or several (list of lists).

    A prediction that is empty or tokenizes to nothing scores 0 and is counted (`n_empty_predictions`).
    A reference that is empty or tokenizes to nothing is ignored; an example with no other reference is
    left out (`n_skipped_examples`). Both log a warning naming the examples (with their ids when `ids`
    is given). Only mismatched lengths, non-str texts, or nothing left to score raise.
    """
    reference_sets = _reference_sets(references)
    _check_lengths(predictions, reference_sets, ids)
    scorers = _ExampleScorers(get_tokenizer(tokenizer))
    per_example, empty, skipped, ignored_references = [], [], [], []
    for index, (prediction, refs) in enumerate(zip(predictions, reference_sets)):
        example = _describe_example(index, ids)
        _check_types(prediction, refs, example)
        prediction, refs = normalize_text(prediction), [normalize_text(reference) for reference in refs]
        scorer, cached = scorers.for_texts([prediction, *refs])
        usable = [reference for reference in refs if cached.tokenize(reference)]
        ignored_references += [
            f"{example} reference {i}" for i, reference in enumerate(refs) if not cached.tokenize(reference)
        ]
        if not usable:
            skipped.append(example)
        elif not cached.tokenize(prediction):
            empty.append(example)
            per_example.append(dict.fromkeys(ROUGE_TYPES, (0.0, 0.0)))
        else:
            per_example.append(_score_example(scorer, prediction, usable))
    if not per_example:
        raise ValueError(
            f"nothing to score: no reference has any token under the {scorers.label!r} ROUGE tokenizer "
            f"({_listing(skipped)}); check the reference column, or choose another tokenizer"
        )
    result = _aggregate(per_example, scorers.label, n_empty=len(empty), n_skipped=len(skipped))
    _warn_about_texts(result, empty, skipped, ignored_references)
    return result


def example_scores(
    predictions: Sequence[str], references: Sequence[Sequence[str]], tokenizer: str = "auto", rouge_type: str = "rougeL"
) -> list[Optional[float]]:
    """Each example's F1 of ``rouge_type`` (mean over its references, as `rouge` averages them); 0 for an
    empty prediction, None for an example without a usable reference. The report picks examples by it."""
    scorers = _ExampleScorers(get_tokenizer(tokenizer))
    found: list[Optional[float]] = []
    for prediction, refs in zip(predictions, _reference_sets(references)):
        scorer, cached = scorers.for_texts([prediction, *refs])
        usable = [reference for reference in refs if cached.tokenize(reference)]
        if not usable:
            found.append(None)
        else:
            found.append(_score_example(scorer, prediction, usable)[rouge_type][0] if cached.tokenize(prediction) else 0.0)
    return found


def empty_predictions_warning(n_empty: int, n_total: int, how: str = "empty") -> Optional[str]:
    """The warning for more than 10 % empty predictions, saying what that usually means; else None."""
    if not n_total or n_empty / n_total <= EMPTY_WARNING_SHARE:
        return None
    return (
        f"{n_empty} of {n_total} predictions ({n_empty / n_total:.0%}) are {how}; each scores 0. "
        "This usually means the model ends its summary at once: it learned the end token before any "
        "words (too few training steps, or a learning rate too low or too high), "
        "generation.max_new_tokens is too small, or a stop id (the EOS or end-of-turn token) is the "
        "first thing it writes. Read the predictions before trusting the score."
    )


def _warn_about_texts(result: RougeResult, empty: list[str], skipped: list[str], ignored: list[str]) -> None:
    how = f"empty or have no tokens under the {result.tokenizer!r} ROUGE tokenizer"
    warning = empty_predictions_warning(result.n_empty_predictions, result.n_examples, how)
    if warning:
        logger.warning("%s (%s)", warning, _listing(empty))
    if ignored or skipped:
        logger.warning(
            "%d reference(s) are empty or have no tokens under the %r ROUGE tokenizer and were ignored (%s); "
            "%d example(s) had no other reference and were left out of the scores",
            len(ignored), result.tokenizer, _listing(ignored), result.n_skipped_examples,
        )


def _listing(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" ... ({len(items)} in all)" if len(items) > limit else "")


class _ExampleScorers:
    """A RougeScorer (with a per-call token cache) for each tokenizer an example may need: one for a
    plain tokenizer, one per language that `auto` picks from an example's texts."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._built: dict[int, tuple[rouge_scorer.RougeScorer, _CachingTokenizer]] = {}

    @property
    def label(self) -> str:
        return self._tokenizer.label

    def for_texts(self, texts: Sequence[str]) -> tuple[rouge_scorer.RougeScorer, _CachingTokenizer]:
        chooser = getattr(self._tokenizer, "for_texts", None)
        chosen = chooser(texts) if chooser else self._tokenizer
        if id(chosen) not in self._built:
            cached = _CachingTokenizer(chosen)
            self._built[id(chosen)] = (rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=cached), cached)
        return self._built[id(chosen)]


def _reference_sets(references: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    if isinstance(references, str):
        raise TypeError("references must be a list of strings (or of lists of strings), not a str")
    return [[refs] if isinstance(refs, str) else list(refs) for refs in references]


def _check_lengths(
    predictions: Sequence[str], reference_sets: list[list[str]], ids: Sequence[str] | None
) -> None:
    if isinstance(predictions, str):
        raise TypeError("predictions must be a list of strings, not a str")
    if len(predictions) != len(reference_sets):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(reference_sets)} references; "
            "they must pair up one to one"
        )
    if ids is not None and len(ids) != len(predictions):
        raise ValueError(f"got {len(ids)} ids for {len(predictions)} predictions")
    if not predictions:
        raise ValueError("nothing to score: predictions and references are empty")


def _describe_example(index: int, ids: Sequence[str] | None) -> str:
    return f"example {index}" if ids is None else f"example {index} (id {ids[index]!r})"


def _check_types(prediction: str, references: list[str], example: str) -> None:
    texts = [(f"{example} prediction", prediction)]
    texts += [(f"{example} reference {i}", reference) for i, reference in enumerate(references)]
    for where, text in texts:
        if not isinstance(text, str):
            raise TypeError(f"{where} is {type(text).__name__}, expected str")


def _score_example(
    scorer: rouge_scorer.RougeScorer, prediction: str, references: list[str]
) -> dict[str, tuple[float, float]]:
    """rouge type -> (mean F1 over references, max F1 over references)."""
    scores = [scorer.score(reference, prediction) for reference in references]
    summary = {}
    for rouge_type in ROUGE_TYPES:
        f1s = [score[rouge_type].fmeasure for score in scores]
        summary[rouge_type] = (sum(f1s) / len(f1s), max(f1s))
    return summary


def _aggregate(
    per_example: list[dict[str, tuple[float, float]]], label: str, n_empty: int, n_skipped: int
) -> RougeResult:
    count = len(per_example)
    means = {t: sum(e[t][0] for e in per_example) / count for t in ROUGE_TYPES}
    maxes = {f"{t}_max": sum(e[t][1] for e in per_example) / count for t in ROUGE_TYPES}
    return RougeResult(
        **means, **maxes, n_examples=count, n_empty_predictions=n_empty, n_skipped_examples=n_skipped,
        tokenizer=label,
    )


# ---------------------------------------------------------------------------------------------
# Degenerate outputs
# ---------------------------------------------------------------------------------------------

REPEATED_NGRAM = 3  # a prediction "repeats a phrase" when its most frequent word 3-gram ...
REPEATED_TIMES = 3  # ... occurs this many times or more
DEGENERATE_WARNING_SHARE = 0.05  # more degenerate predictions than this share of the examples logs a warning


@dataclasses.dataclass(frozen=True)
class DegenerateCounts:
    """Predictions that a ROUGE mean hides: cut off at max_new_tokens without the end token, and
    repeating a phrase (their most frequent word 3-gram occurs 3 times or more). ``n_degenerate`` counts
    predictions that are either. ``n_cut_at_max_new_tokens`` is None when generation did not say which
    predictions ended on a stop token (predictions read from a file)."""

    n_cut_at_max_new_tokens: Optional[int]
    n_repeating_predictions: int
    n_degenerate_predictions: int

    def as_dict(self) -> dict[str, Optional[int]]:
        return dataclasses.asdict(self)


def most_repeated_ngram(tokens: Sequence[str], n: int = REPEATED_NGRAM) -> tuple[tuple[str, ...], int]:
    """The most frequent n-gram of ``tokens`` (overlapping occurrences count) and how often it occurs;
    ((), 0) when there are fewer than n tokens."""
    counts = collections.Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return counts.most_common(1)[0] if counts else ((), 0)


def count_degenerate(
    predictions: Sequence[str], stopped: Optional[Sequence[bool]] = None, tokenizer: str = "auto"
) -> DegenerateCounts:
    """Count degenerate predictions. Words are the ROUGE tokenizer's (``tokenizer``; auto: Korean
    morphemes through kiwi for a prediction with Hangul, English words otherwise), so a Korean phrase
    repeats when its morphemes do. ``stopped[i]`` says whether prediction i ended on a stop token
    (``generate_summaries(stopped=...)``); without it the cut count is None."""
    words = get_tokenizer(tokenizer)
    choose = getattr(words, "for_texts", None)
    repeating = []
    for prediction in predictions:
        tokens = (choose([prediction]) if choose else words).tokenize(prediction)
        repeating.append(most_repeated_ngram(tokens)[1] >= REPEATED_TIMES)
    known = stopped is not None and len(stopped) == len(predictions)
    cut = [not ended for ended in stopped] if known else [False] * len(predictions)
    return DegenerateCounts(
        n_cut_at_max_new_tokens=sum(cut) if known else None,
        n_repeating_predictions=sum(repeating),
        n_degenerate_predictions=sum(c or r for c, r in zip(cut, repeating)),
    )


def degenerate_warning(counts: DegenerateCounts, n_total: int, max_new_tokens: Optional[int] = None) -> Optional[str]:
    """The warning for more than 5 % degenerate predictions, saying what they are; else None."""
    if not n_total or counts.n_degenerate_predictions / n_total <= DEGENERATE_WARNING_SHARE:
        return None
    cut = counts.n_cut_at_max_new_tokens
    limit = f" ({max_new_tokens})" if max_new_tokens else ""
    parts = [f"{counts.n_repeating_predictions} repeat a phrase (a word 3-gram {REPEATED_TIMES} times or more)"]
    if cut is not None:
        parts.insert(0, f"{cut} hit generation.max_new_tokens{limit} without the end token")
    return (
        f"{counts.n_degenerate_predictions} of {n_total} predictions ({counts.n_degenerate_predictions / n_total:.0%}) "
        f"are degenerate: {' and '.join(parts)}. Read predictions.csv before trusting the score. Loops usually mean "
        "too few training steps, a learning rate too high, or added tokens the model has not learned to use "
        "(preprocessing.speaker_tokens); summaries cut while still reading well need a larger generation.max_new_tokens."
    )


# ---------------------------------------------------------------------------------------------
# Files (behind `sumtune score`)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Table:
    path: Path
    rows: list[dict[str, str]]
    columns: list[str]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> _Table:
        rows = read_records(path)
        if not rows:
            raise ValueError(f"{path}: no rows to score")
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return cls(Path(path), rows, columns)

    def require(self, column: str, role: str) -> None:
        if column not in self.columns:
            raise ValueError(
                f"{self.path}: no {role} column {column!r}; available columns: "
                f"{', '.join(self.columns)}"
            )

    def values(self, column: str) -> list[str]:
        return [row.get(column, "") for row in self.rows]


def score_files(
    predictions_path: str | os.PathLike[str],
    references_path: str | os.PathLike[str] | None = None,
    prediction_column: str = "prediction",
    reference_columns: Sequence[str] | None = None,
    id_column: str = "fname",
    tokenizer: str = "auto",
) -> RougeResult:
    """Score a predictions file (CSV/JSONL) against references from another file or the same one.

    Columns: the prediction column falls back from "prediction" to "summary". References default to
    "reference", else "summary", else every summaryN column (DialogSum test: summary1..summary3).
    With two files, rows pair up by id (`id_column`, or "id") when both have one, else by position.
    Reference rows without a prediction are ignored; `n_examples` counts what was scored. Empty
    predictions and references are handled as in `rouge()`.
    """
    predicted = _Table.read(predictions_path)
    pred_column = _prediction_column(predicted, prediction_column)
    source = predicted if references_path is None else _Table.read(references_path)
    ref_columns = _reference_columns(source, reference_columns)
    if source is predicted and ref_columns == [pred_column]:
        raise ValueError(
            f"{predicted.path}: column {pred_column!r} would be scored against itself; pass "
            "references_path or reference_columns"
        )
    pred_ids = _ids(predicted, id_column)
    ordered = source.rows if source is predicted else _align(predicted, source, pred_ids, id_column)
    references = [[row.get(column, "") for column in ref_columns] for row in ordered]
    return rouge(predicted.values(pred_column), references, tokenizer, ids=pred_ids)


CLASSIFICATION_PREDICTION_COLUMN = "predicted_label"  # predictions.csv of a classification run


def _prediction_column(table: _Table, column: str) -> str:
    if column == "prediction" and column not in table.columns and "summary" in table.columns:
        return "summary"
    if column not in table.columns and CLASSIFICATION_PREDICTION_COLUMN in table.columns:
        raise ValueError(
            f"{table.path} holds a classification run's predictions (column {CLASSIFICATION_PREDICTION_COLUMN!r}); "
            "sumtune score computes ROUGE of summaries. The run's accuracy and macro-F1 are in metrics.json beside "
            "it, and `sumtune report` compares classification runs"
        )
    table.require(column, "prediction")
    return column


def _reference_columns(table: _Table, requested: Sequence[str] | None) -> list[str]:
    if requested:
        for column in requested:
            table.require(column, "reference")
        return list(requested)
    if "reference" in table.columns:  # sumtune's predictions.csv: reference, reference2, ... when several
        more = [c for c in table.columns if re.fullmatch(r"reference\d+", c)]
        return ["reference"] + sorted(more, key=lambda name: int(name[len("reference"):]))
    if "summary" in table.columns:
        return ["summary"]
    numbered = [c for c in table.columns if re.fullmatch(r"summary\d+", c)]
    if not numbered:
        raise ValueError(
            f"{table.path}: no reference column found (looked for 'reference', 'summary', "
            f"'summary1'...); available columns: {', '.join(table.columns)}"
        )
    return sorted(numbered, key=lambda name: int(name[len("summary") :]))


def _id_column(table: _Table, preferred: str) -> str | None:
    for column in (preferred, "id"):
        if column in table.columns:
            return column
    return None


def _ids(table: _Table, preferred: str) -> list[str] | None:
    column = _id_column(table, preferred)
    return None if column is None else table.values(column)


def _align(
    predicted: _Table, source: _Table, pred_ids: list[str] | None, preferred: str
) -> list[dict[str, str]]:
    """Reference rows in prediction order: by id when both files have ids, else by position."""
    source_column = _id_column(source, preferred)
    if pred_ids is None or source_column is None:
        if len(predicted.rows) != len(source.rows):
            raise ValueError(
                f"{predicted.path} has {len(predicted.rows)} rows but {source.path} has "
                f"{len(source.rows)}; without an id column ({preferred!r} or 'id') in both, "
                "rows pair up by position and the counts must match"
            )
        return source.rows
    by_id = _index_by_id(source, source_column)
    missing = [pred_id for pred_id in pred_ids if pred_id not in by_id]
    if missing:
        shown = ", ".join(missing[:10]) + (f" ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise ValueError(f"{source.path}: no reference row for these {predicted.path} ids: {shown}")
    return [by_id[pred_id] for pred_id in pred_ids]


def _index_by_id(table: _Table, column: str) -> dict[str, dict[str, str]]:
    by_id: dict[str, dict[str, str]] = {}
    for row in table.rows:
        key = row.get(column, "")
        if key in by_id:
            raise ValueError(f"{table.path}: id {key!r} appears more than once in column {column!r}")
        by_id[key] = row
    return by_id


def format_table(result: RougeResult) -> str:
    """A small aligned table: each metric's mean and max over references, then score, n, tokenizer."""
    lines = [f"{'metric':<10}{'mean-ref':>10}{'max-ref':>10}"]
    for rouge_type in ROUGE_TYPES:
        mean = getattr(result, rouge_type)
        best = getattr(result, f"{rouge_type}_max")
        lines.append(f"{rouge_type:<10}{mean:>10.4f}{best:>10.4f}")
    lines.append(f"{'score':<10}{result.score:>10.4f}   (rouge1 + rouge2 + rougeL, mean-ref)")
    lines.append(f"{'n':<10}{result.n_examples:>10d}")
    lines.append(f"{'empty':<10}{result.n_empty_predictions:>10d}   (predictions without tokens, scored 0)")
    if result.n_skipped_examples:
        lines.append(f"{'skipped':<10}{result.n_skipped_examples:>10d}   (examples without a reference)")
    lines.append(f"{'tokenizer':<10}  {result.tokenizer}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------

Label = Any  # a class label as the data has it: a string, or an integer that is also its id


@dataclasses.dataclass(frozen=True)
class ClassificationResult:
    """Scores of predicted labels against true ones, over the classes of ``labels`` (in that order).

    Macro averages count every class of ``labels`` equally, a class without examples included (its
    F1 is 0). ``score`` is ``macro_f1``: what a report ranks runs by. The majority baseline always
    predicts the most frequent true label (ties go to the one first in ``labels``).
    """

    accuracy: float
    macro_f1: float
    majority_label: Label
    majority_accuracy: float
    majority_macro_f1: float
    labels: list[Label]
    per_class: dict[str, dict[str, float | int]]  # str(label) -> precision, recall, f1, support
    confusion_matrix: list[list[int]]  # [i][j]: true labels[i] predicted as labels[j]
    n_examples: int

    @property
    def score(self) -> float:
        return self.macro_f1

    def as_dict(self) -> dict[str, Any]:
        """The metrics.json of a classification run (without eval_file_sha256, which training adds)."""
        return {
            "task": "classification", "score": self.score, "macro_f1": self.macro_f1, "accuracy": self.accuracy,
            "majority_label": self.majority_label, "majority_accuracy": self.majority_accuracy,
            "majority_macro_f1": self.majority_macro_f1, "labels": list(self.labels),
            "per_class": {label: dict(scores) for label, scores in self.per_class.items()},
            "confusion_matrix": [list(row) for row in self.confusion_matrix], "n_examples": self.n_examples,
        }


def classification_scores(
    true: Sequence[Label], predicted: Sequence[Label], labels: Sequence[Label], ids: Sequence[str] | None = None
) -> ClassificationResult:
    """Accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix and the majority baseline.

    Every true and predicted label must be one of ``labels`` (compared as they are: the string "1" is
    not the integer 1); the error names the first example that breaks this (with its id when ``ids``
    is given). A class that is never predicted has precision 0 (scikit-learn's ``zero_division=0``).
    """
    labels = _check_classification_input(true, predicted, labels, ids)
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=labels, average=None, zero_division=0
    )
    counts = [int(n) for n in support]
    majority = labels[counts.index(max(counts))]  # index() finds the first of tied counts: label order
    macro = functools.partial(f1_score, labels=labels, average="macro", zero_division=0)
    return ClassificationResult(
        accuracy=float(accuracy_score(true, predicted)),
        macro_f1=float(macro(true, predicted)),
        majority_label=majority,
        majority_accuracy=max(counts) / len(true),
        majority_macro_f1=float(macro(true, [majority] * len(true))),
        labels=labels,
        per_class={
            str(label): {"precision": float(p), "recall": float(r), "f1": float(f), "support": n}
            for label, p, r, f, n in zip(labels, precision, recall, f1, counts)
        },
        confusion_matrix=confusion_matrix(true, predicted, labels=labels).tolist(),
        n_examples=len(true),
    )


def _check_classification_input(
    true: Sequence[Label], predicted: Sequence[Label], labels: Sequence[Label], ids: Sequence[str] | None
) -> list[Label]:
    for name, values in (("true", true), ("predicted", predicted), ("labels", labels)):
        if isinstance(values, str):
            raise TypeError(f"{name} must be a list of labels, not a str")
    labels = list(labels)
    repeated = sorted({repr(label) for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"labels lists {', '.join(repeated)} more than once; each class must appear once")
    if len(labels) < 2:
        raise ValueError(f"labels must name at least two classes to score a classifier (got {labels!r})")
    if len(true) != len(predicted):
        raise ValueError(
            f"got {len(true)} true labels but {len(predicted)} predicted labels; they must pair up one to one"
        )
    if ids is not None and len(ids) != len(true):
        raise ValueError(f"got {len(ids)} ids for {len(true)} examples")
    if not true:
        raise ValueError("nothing to score: there are no examples")
    known = set(labels)
    for index, (label, guess) in enumerate(zip(true, predicted)):
        for role, value in (("true", label), ("predicted", guess)):
            if value not in known:
                raise ValueError(
                    f"{_describe_example(index, ids)}: {role} label {value!r} is not one of the labels "
                    f"{labels!r}; check the label column, or add the label to data.labels"
                )
    return labels


def format_classification_table(result: ClassificationResult) -> str:
    """Accuracy, macro-F1 and the majority baseline, then per-class scores and the confusion matrix."""
    names = [str(label) for label in result.labels]
    width = max(10, *(len(name) + 2 for name in names))
    lines = [
        f"{'accuracy':<{width}}{result.accuracy:>10.4f}",
        f"{'macro-F1':<{width}}{result.macro_f1:>10.4f}   (score)",
        f"{'majority':<{width}}{result.majority_macro_f1:>10.4f}   (macro-F1 of always predicting "
        f"{result.majority_label!r}; its accuracy {result.majority_accuracy:.4f})",
        f"{'n':<{width}}{result.n_examples:>10d}",
        "",
        f"{'label':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for name in names:
        s = result.per_class[name]
        lines.append(f"{name:<{width}}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}{s['support']:>10d}")
    cell = max(8, *(len(name) + 2 for name in names), *(len(str(n)) + 2 for row in result.confusion_matrix for n in row))
    lines += ["", "confusion matrix (rows: true label, columns: predicted label)",
              " " * width + "".join(f"{name:>{cell}}" for name in names)]
    for name, row in zip(names, result.confusion_matrix):
        lines.append(f"{name:<{width}}" + "".join(f"{count:>{cell}d}" for count in row))
    return "\n".join(lines)
