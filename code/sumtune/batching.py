"""Training batches cut from examples sorted by length (``training.group_by_length``), standard library only.

Every example is sorted by its total length (source + target for seq2seq, the whole sequence for
causal models) and the sorted list is cut into batches of ``per_device_train_batch_size`` neighbours,
or, with ``training.max_tokens_per_batch``, into batches of as many neighbours as fit the budget
(rows × longest row ≤ budget; a row longer than the budget is a batch of its own). Only the order
of the batches is random: it is drawn per epoch from (seed, epoch), so the same run gives the same
batches in the same order, and a run resumed mid-epoch, which skips the batches it already trained
on, continues exactly where the interrupted one stopped. Equal lengths are ordered by a draw of the
same generator, so neighbours of equal length change batch from epoch to epoch at no padding cost.

Under several processes (DDP) accelerate deals the batches out in turn (batch i to rank i mod N);
the batches are shuffled in groups of N neighbours, so that the ranks of one step get batches of
similar length and none waits long for another.
"""

from __future__ import annotations

import random
from typing import Iterator, Optional, Sequence


def example_lengths(columns, kind: str) -> list[int]:
    """Each example's length as batching counts it: ``input_ids`` (+ ``labels`` for seq2seq, whose labels
    are a second sequence; a causal row's labels cover its input_ids, a classifier's are one number)."""
    sources = [len(ids) for ids in columns["input_ids"]]
    if kind != "seq2seq":
        return sources
    return [source + len(labels) for source, labels in zip(sources, columns["labels"])]


class LengthBuckets:
    """A batch sampler (``DataLoader(batch_sampler=...)``): lists of example indices, see the module doc.

    ``ranks``: how many processes share the batches (they are shuffled in groups of that many).
    ``set_epoch`` chooses the epoch whose order ``__iter__`` gives (the Trainer calls it every epoch).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, max_tokens: Optional[int] = None,
                 ranks: int = 1):
        if not lengths:
            raise ValueError("no examples to batch")
        self.lengths, self.seed, self.ranks = list(lengths), seed, ranks
        self.epoch = 0
        self.sizes = (token_budget_sizes(sorted(self.lengths), max_tokens) if max_tokens
                      else fixed_sizes(len(self.lengths), batch_size))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches(self.epoch))

    def batches(self, epoch: int) -> list[list[int]]:
        """Epoch ``epoch``'s batches in the order they are trained: the same for the same (seed, epoch)."""
        rng = random.Random(f"sumtune length buckets: seed {self.seed}, epoch {epoch}")
        tiebreak = [rng.random() for _ in self.lengths]
        ordered = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], tiebreak[i]))
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
        """Positions the batch takes once padded to its longest row."""
        return len(batch) * max(self.lengths[i] for i in batch)


def fixed_sizes(n: int, batch_size: int) -> list[int]:
    """``batch_size`` rows per batch; the shortest examples' batch takes the remainder."""
    remainder = n % batch_size
    return ([remainder] if remainder else []) + [batch_size] * (n // batch_size)


def token_budget_sizes(ascending: list[int], max_tokens: int) -> list[int]:
    """Rows per batch, walking the ascending lengths: a row joins the batch while (rows + 1) × its length
    (the batch's new longest) stays within ``max_tokens``; a row longer than the budget goes alone."""
    sizes, rows = [], 0
    for length in ascending:
        if rows and (rows + 1) * length > max_tokens:
            sizes.append(rows)
            rows = 0
        rows += 1
    sizes.append(rows)
    return sizes


def padding_share(batches: list[list[int]], *row_lengths: Sequence[int]) -> float:
    """The share of padded positions when every batch pads each sequence kind (``row_lengths``: one list
    per kind, e.g. source and target lengths for seq2seq) to the batch's longest."""
    real = padded = 0
    for lengths in row_lengths:
        for batch in batches:
            real += sum(lengths[i] for i in batch)
            padded += len(batch) * max(lengths[i] for i in batch)
    return 1 - real / padded
