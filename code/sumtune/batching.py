"""Training batches cut from examples sorted by length (``training.group_by_length``), standard library only.

Every example has a shape: the lengths of the sequences a batch pads separately, in order of weight
(seq2seq: source, then target; causal: the whole sequence). The examples are sorted by shape and the
sorted list is cut into batches of ``per_device_train_batch_size`` neighbours, or, with
``training.max_tokens_per_batch``, into batches of as many neighbours as fit the budget once padded
(rows × the sum of the batch's longest of each sequence ≤ budget; an example over the budget is a
batch of its own). Only the order of the batches is random: it is drawn per epoch from (seed, epoch),
so the same run gives the same batches in the same order, and a run resumed mid-epoch, which skips the
batches it already trained on, continues exactly where the interrupted one stopped. Equal shapes are
ordered by a draw of the same generator, so they change batch from epoch to epoch at no padding cost.

Seq2seq examples sort by source length first: on Korean DialogSum (dev, batch 8) that leaves 9 % of
positions padding (2 % of source, 31 % of target positions), sorting by source + target 12 % (7 % and
28 %), because the sources are five times as long as the summaries.

Under several processes (DDP) accelerate deals the batches out in turn (batch i to rank i mod N);
the batches are shuffled in groups of N neighbours, so that the ranks of one step get batches of
similar length and none waits long for another.
"""

from __future__ import annotations

import random
from typing import Iterator, Optional, Sequence

Shape = tuple[int, ...]


def example_shapes(columns, kind: str) -> list[Shape]:
    """Each example's shape (see the module doc) from ``input_ids`` and, for seq2seq, ``labels``, a second
    sequence (a causal row's labels cover its input_ids; a classifier's are one number)."""
    if kind != "seq2seq":
        return [(len(ids),) for ids in columns["input_ids"]]
    return [(len(ids), len(labels)) for ids, labels in zip(columns["input_ids"], columns["labels"])]


class LengthBuckets:
    """A batch sampler (``DataLoader(batch_sampler=...)``): lists of example indices, see the module doc.

    ``shapes``: one per example (a tuple of sequence lengths, or one length). ``ranks``: how many
    processes share the batches (they are shuffled in groups of that many). ``set_epoch`` chooses the
    epoch whose order ``__iter__`` gives (the Trainer calls it every epoch).
    """

    def __init__(self, shapes: Sequence, batch_size: int, seed: int, max_tokens: Optional[int] = None,
                 ranks: int = 1):
        if not shapes:
            raise ValueError("no examples to batch")
        self.shapes = [tuple(shape) if isinstance(shape, (tuple, list)) else (shape,) for shape in shapes]
        self.seed, self.ranks = seed, ranks
        self.epoch = 0
        self.sizes = (token_budget_sizes(sorted(self.shapes), max_tokens) if max_tokens
                      else fixed_sizes(len(self.shapes), batch_size))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches(self.epoch))

    def batches(self, epoch: int) -> list[list[int]]:
        """Epoch ``epoch``'s batches in the order they are trained: the same for the same (seed, epoch)."""
        rng = random.Random(f"sumtune length buckets: seed {self.seed}, epoch {epoch}")
        tiebreak = [rng.random() for _ in self.shapes]
        ordered = sorted(range(len(self.shapes)), key=lambda i: (self.shapes[i], tiebreak[i]))
        batches, start = [], 0
        for size in self.sizes:
            batches.append(ordered[start:start + size])
            start += size
        # groups of `ranks` neighbours; the shortest batches that do not fill a group go last, where they
        # cannot shift the dealing of the others
        partial = len(batches) % self.ranks
        groups = [batches[at:at + self.ranks] for at in range(partial, len(batches), self.ranks)]
        rng.shuffle(groups)
        # the costliest group first, as the HF sampler does: running out of memory shows at the first step
        if groups:
            costliest = max(range(len(groups)), key=lambda g: max(self.padded(batch) for batch in groups[g]))
            groups[0], groups[costliest] = groups[costliest], groups[0]
        return [batch for group in groups for batch in group] + batches[:partial]

    def padded(self, batch: list[int]) -> int:
        """Positions the batch takes once each of its sequences is padded to the batch's longest."""
        return padded_size([self.shapes[i] for i in batch])


def padded_size(shapes: list[Shape]) -> int:
    return len(shapes) * sum(max(lengths) for lengths in zip(*shapes))


def fixed_sizes(n: int, batch_size: int) -> list[int]:
    """``batch_size`` rows per batch; the shortest examples' batch takes the remainder."""
    remainder = n % batch_size
    return ([remainder] if remainder else []) + [batch_size] * (n // batch_size)


def token_budget_sizes(ascending: list[Shape], max_tokens: int) -> list[int]:
    """Rows per batch, walking the sorted shapes: a row joins the batch while the batch, padded with it,
    stays within ``max_tokens``; a row over the budget on its own goes alone."""
    sizes, rows, longest = [], 0, ()
    for shape in ascending:
        grown = tuple(map(max, longest, shape)) if rows else shape
        if rows and (rows + 1) * sum(grown) > max_tokens:
            sizes.append(rows)
            rows, grown = 0, shape
        rows, longest = rows + 1, grown
    sizes.append(rows)
    return sizes


def padding_share(batches: list[list[int]], shapes: Sequence[Shape]) -> float:
    """The share of padding in the positions of ``batches`` (each sequence padded to the batch's longest)."""
    real = sum(sum(shapes[i]) for batch in batches for i in batch)
    return 1 - real / sum(padded_size([shapes[i] for i in batch]) for batch in batches)
