"""Episode batches for a training loop of your own: an iterable and a ``torch.utils.data.IterableDataset``.

Batch ``i`` holds episodes ``i·B .. i·B + B − 1`` of a sampler, and the samplers are
counter-based (an episode is a function of its seed and index alone, ``counter_rng``), so the
stream is the same whatever the number of DataLoader workers: worker ``w`` of ``W`` makes
batches ``w, w + W, w + 2W, ...`` and the DataLoader hands them out in that round-robin order.

Online (``LabelOffsetSampler``) batches are ``SequenceBatch``: images (B, T, c, H, W) uint8 (ink
= 255), labels (B, T) int64, previous_codes (B, T, D) float32 (y_{t−1} encoded; zeros at t = 0),
targets (B, T) or (B, T, 5) int64. Episodic (``EpisodeSampler``) batches are ``EpisodeBatch``:
support_images (B, N·K, c, H, W) uint8, support_labels (B, N·K) int64 in [0, N), query_images
(B, N·Q, c, H, W) uint8, query_labels (B, N·Q) int64. ``batch.inputs()`` is what a learner is
handed; ``.to(device)`` moves a batch.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .episodes import EpisodeBatch, EpisodeSampler, LabelOffsetSampler, SequenceBatch


class EpisodeStream(IterableDataset):
    """Batches of ``batch_size`` consecutive episodes of ``sampler``, from batch ``start`` on;
    endless unless ``batches`` is given. Use it as it is (``for batch in stream``) or in a
    ``DataLoader(stream, batch_size=None, num_workers=...)``: the batches are the same."""

    def __init__(self, sampler: LabelOffsetSampler | EpisodeSampler, batch_size: int, batches: int | None = None,
                 start: int = 0) -> None:
        if batch_size < 1 or (batches is not None and batches < 0) or start < 0:
            raise ValueError(f"batch_size must be positive and batches, start not negative "
                             f"(got {batch_size}, {batches}, {start})")
        self.sampler, self.batch_size, self.batches, self.start = sampler, batch_size, batches, start

    def batch(self, index: int) -> SequenceBatch | EpisodeBatch:
        """Batch ``index`` of the stream: episodes index·B .. index·B + B − 1."""
        first = index * self.batch_size
        return self.sampler.batch(np.arange(first, first + self.batch_size))

    def __iter__(self) -> Iterator[SequenceBatch | EpisodeBatch]:
        worker = get_worker_info()
        offset, stride = (0, 1) if worker is None else (worker.id, worker.num_workers)
        end = None if self.batches is None else self.start + self.batches
        indices = itertools.count(self.start + offset, stride)
        for index in indices if end is None else range(self.start + offset, end, stride):
            yield self.batch(index)

    def __len__(self) -> int:
        if self.batches is None:
            raise TypeError("an endless episode stream has no length; pass batches=")
        return self.batches
