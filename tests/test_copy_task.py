"""A small copy task: the NTM learns to copy (its held-out loss falls well below the untrained one)."""

import json
import math
import re

import pytest
import torch

from fewshot_mem.tasks.copy import BITS, NTMCopier, copy_batch, evaluate_copy, main, train_copy


def test_copy_batches_frame_the_sequence():
    batch = copy_batch(4, 3, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (4, 8, BITS + 2) and batch.targets.shape == (4, 3, BITS)
    assert torch.equal(batch.inputs[:, 1:4, :BITS], batch.targets)
    assert torch.equal(batch.inputs[:, 0, BITS], torch.ones(4))  # start flag
    assert torch.equal(batch.inputs[:, 4, BITS + 1], torch.ones(4))  # end flag
    assert batch.inputs[:, 5:].abs().sum() == 0  # the answer phase gives nothing away


def test_ntm_learns_to_copy_short_sequences():
    torch.manual_seed(0)
    model = NTMCopier(controller_size=64, memory_slots=16, memory_width=8)
    untrained_loss, _ = evaluate_copy(model, max_length=4)
    train_copy(model, steps=250, batch_size=16, max_length=4, learning_rate=3e-3)
    trained_loss, trained_bits = evaluate_copy(model, max_length=4)
    assert trained_loss < 0.5 * untrained_loss
    assert trained_bits < 4.0  # of 8–32 bits per sequence


def test_copy_cli_writes_its_histories(tmp_path, capsys):
    """The JSON parses and holds both models' curves, ending at the last step, and each printed
    line gives that model's numbers (it only checked that "lstm:" was printed)."""
    out = tmp_path / "copy.json"
    main(["--models", "ntm,lstm", "--steps", "3", "--max-length", "3", "--out", str(out), "--threads", "1"])
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert sorted(results) == ["lstm", "ntm"]
    for name, result in results.items():
        curve = result["history"]
        assert curve and curve[-1]["step"] == result["steps"] == 3
        assert all(math.isfinite(point["loss"]) and point["loss"] > 0 for point in curve)
        assert all(0 <= point["bits_per_sequence"] <= 3 * BITS for point in curve)  # at most every bit wrong
        line = re.search(rf"^{name}: ([\d.]+) -> ([\d.]+) bits per sequence", printed, re.MULTILINE)
        assert line, printed
        assert float(line[1]) == pytest.approx(result["untrained_bits"], abs=0.05)
        assert float(line[2]) == pytest.approx(result["bits_per_sequence"], abs=0.005)
