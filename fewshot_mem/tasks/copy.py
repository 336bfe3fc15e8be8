"""The copy task of Graves et al. (2014): read a sequence of random 8-bit vectors, then
write it back. Trains the NTM and the LSTM baseline and reports bits per sequence.

    python -m fewshot_mem.tasks.copy [--models ntm,lstm] [--steps 20000] [--batch-size 16]

Input at each step: 8 data bits, a start-of-sequence flag and an end-of-sequence
flag. The model sees the sequence (length 1–20), the end flag, and then blank
inputs while it must emit the sequence. The error is the number of wrong bits
per sequence after thresholding the outputs at 0.5, as in the paper's figures.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..models.learner import State, TaskSpec
from ..models.ntm import NTM
from ..paths import write_atomically

BITS = 8


@dataclass(frozen=True)
class CopyBatch:
    inputs: torch.Tensor  # (B, 2L + 2, BITS + 2)
    targets: torch.Tensor  # (B, L, BITS)


def copy_batch(batch_size: int, length: int, generator: torch.Generator) -> CopyBatch:
    """B sequences of ``length`` random bit vectors framed by start and end flags."""
    bits = torch.randint(0, 2, (batch_size, length, BITS), generator=generator).float()
    inputs = torch.zeros(batch_size, 2 * length + 2, BITS + 2)
    inputs[:, 0, BITS] = 1.0  # start
    inputs[:, 1 : length + 1, :BITS] = bits
    inputs[:, length + 1, BITS + 1] = 1.0  # end; the answer is read from the blanks after it
    return CopyBatch(inputs, bits)


class LSTMCopier(nn.Module):
    """The LSTM baseline of the NTM paper (here one layer; the paper used three of 256)."""

    def __init__(self, controller_size: int = 256) -> None:
        super().__init__()
        self.lstm = nn.LSTM(BITS + 2, controller_size, batch_first=True)
        self.readout = nn.Linear(controller_size, BITS)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.readout(self.lstm(inputs)[0])


class NTMCopier(nn.Module):
    """The NTM's step over raw input vectors (no images, no labels)."""

    def __init__(self, **hyperparameters) -> None:
        super().__init__()
        task = TaskSpec(ways=BITS, image_shape=(1, 1, BITS + 2))
        self.ntm = NTM(task, **hyperparameters)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        no_code = inputs.new_zeros(*inputs.shape[:2], self.ntm.task.code_size)
        state: State = self.ntm.initial_state(inputs.shape[0], inputs)
        scores, _ = self.ntm.run(inputs, no_code, state)
        return scores


def copy_loss_and_errors(model: nn.Module, batch: CopyBatch) -> tuple[torch.Tensor, float]:
    length = batch.targets.shape[1]
    logits = model(batch.inputs)[:, length + 2 :]  # the answer phase
    loss = F.binary_cross_entropy_with_logits(logits, batch.targets)
    wrong_bits = ((logits > 0).float() != batch.targets).float().sum(dim=(1, 2)).mean()
    return loss, float(wrong_bits)


def train_copy(model: nn.Module, steps: int, batch_size: int = 16, max_length: int = 20,
               learning_rate: float = 1e-4, seed: int = 0, log_every: int = 100) -> list[dict]:
    """Trains with RMSprop (as the paper) on lengths drawn uniformly from 1..max_length."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=learning_rate, momentum=0.9, alpha=0.95)
    history, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        length = int(torch.randint(1, max_length + 1, (1,), generator=generator))
        loss, errors = copy_loss_and_errors(model, copy_batch(batch_size, length, generator))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        if step % log_every == 0 or step == steps:
            history.append({"step": step, "loss": float(loss.detach()), "bits_per_sequence": errors,
                            "seconds": time.perf_counter() - start})
    return history


def evaluate_copy(model: nn.Module, batches: int = 20, batch_size: int = 16, max_length: int = 20,
                  seed: int = 12345) -> tuple[float, float]:
    """Mean loss and wrong bits per sequence on fixed held-out sequences of lengths 1..max_length."""
    generator = torch.Generator().manual_seed(seed)
    losses, errors = 0.0, 0.0
    with torch.no_grad():
        for _ in range(batches):
            length = int(torch.randint(1, max_length + 1, (1,), generator=generator))
            loss, wrong = copy_loss_and_errors(model, copy_batch(batch_size, length, generator))
            losses, errors = losses + float(loss), errors + wrong
    return losses / batches, errors / batches


def build(name: str) -> nn.Module:
    if name == "ntm":
        return NTMCopier()
    if name == "lstm":
        return LSTMCopier()
    raise ValueError(f"unknown copy-task model {name!r}: use ntm or lstm")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Graves et al. (2014) copy task")
    parser.add_argument("--models", default="ntm,lstm")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="RMSprop, as the paper")
    parser.add_argument("--max-length", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the histories as JSON here")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    results = {}
    for name in args.models.split(","):
        model = build(name)
        _, untrained = evaluate_copy(model, max_length=args.max_length)
        start = time.perf_counter()
        history = train_copy(model, args.steps, args.batch_size, args.max_length, args.learning_rate, args.seed)
        seconds = time.perf_counter() - start
        _, trained = evaluate_copy(model, max_length=args.max_length)
        results[name] = {"untrained_bits": untrained, "bits_per_sequence": trained, "seconds": seconds,
                         "steps": args.steps, "max_length": args.max_length, "history": history}
        print(f"{name}: {untrained:.1f} -> {trained:.2f} bits per sequence (lengths 1-{args.max_length}) "
              f"after {args.steps} steps of {args.batch_size} ({seconds:.0f} s)", flush=True)
    if args.out:
        write_atomically(json.dumps(results, indent=2).encode(), Path(args.out))


if __name__ == "__main__":
    main()
