"""Episode sampling speed: fewshot-mem's samplers against learn2learn's TaskDataset.

Both sides draw episodes of the same shape from the same Omniglot classes
(Vinyals train split with rotations) in the same run, and the ratio is printed.
learn2learn composes NWays, KShots, LoadData and RemapLabels over a MetaDataset,
one task at a time; our samplers gather whole batches of episodes at once.

    python benchmarks/bench_samplers.py [--data-root DIR] [--seconds 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from fewshot_mem.data.episodes import ClassPool, EpisodeSampler, LabelOffsetSampler
from fewshot_mem.data.omniglot import load_omniglot


def rate(draw: Callable[[int], int], seconds: float) -> float:
    """Episodes per second of ``draw(start) -> episodes drawn`` over about ``seconds``."""
    draw(0)  # warm-up: first-touch allocations, lazy imports
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += draw(done)
    return done / (time.perf_counter() - start)


def learn2learn_rate(pool: ClassPool, ways: int, shots: int, queries: int, seconds: float) -> float:
    from fewshot_mem.models.l2l import learn2learn as l2l
    from learn2learn.data.transforms import KShots, LoadData, NWays, RemapLabels

    images = pool.images.flatten(0, 1).float().div_(255)  # learn2learn tasks hold float tensors
    labels = torch.arange(pool.num_classes).repeat_interleave(pool.instances_per_class)
    labels_to_indices = {int(c): list(range(c * pool.instances_per_class, (c + 1) * pool.instances_per_class))
                         for c in range(pool.num_classes)}
    dataset = l2l.data.MetaDataset(torch.utils.data.TensorDataset(images, labels),
                                   labels_to_indices=labels_to_indices)
    tasks = l2l.data.TaskDataset(dataset, task_transforms=[
        NWays(dataset, ways), KShots(dataset, shots + queries), LoadData(dataset), RemapLabels(dataset)],
        num_tasks=-1)

    def draw(_: int) -> int:
        tasks.sample()
        return 1

    return rate(draw, seconds)


def batched_rate(sampler, batch_size: int, seconds: float) -> float:
    def draw(start: int) -> int:
        sampler.batch(np.arange(start, start + batch_size))
        return batch_size

    return rate(draw, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    omniglot = load_omniglot(args.data_root, progress=False)
    print(f"{'task':<36}{'fewshot-mem ep/s':>18}{'learn2learn ep/s':>18}{'ratio':>8}")
    for size, shots in ((28, 1), (28, 5)):
        pool = omniglot.pool("vinyals/train", size)
        ours = batched_rate(EpisodeSampler(pool, ways=5, shots=shots, queries=15), args.batch_size, args.seconds)
        theirs = learn2learn_rate(pool, 5, shots, 15, args.seconds)
        print(f"{f'5-way {shots}-shot, 15 queries, {size}x{size}':<36}{ours:>18,.0f}{theirs:>18,.0f}"
              f"{ours / theirs:>7.1f}x")
    pool = omniglot.pool("vinyals/train", 20)
    sequences = batched_rate(LabelOffsetSampler(pool, ways=5, instances_per_class=10),
                             args.batch_size, args.seconds)
    print(f"{'label-offset 5 classes x 10, 20x20':<36}{sequences:>18,.0f}{'-':>18}{'-':>8}")
    augmented = batched_rate(LabelOffsetSampler(pool, ways=5, instances_per_class=10, augment=True),
                             args.batch_size, args.seconds)
    print(f"{'  ... with augmentation':<36}{augmented:>18,.0f}{'-':>18}{'-':>8}")


if __name__ == "__main__":
    main()
