"""An entry's weights: their sha256, loading them safely (weights only, from the bytes whose
hash was checked) and building the learner they belong to."""

from __future__ import annotations

import hashlib
import io

import torch

from ..checkpoints import load_checkpoint
from ..models.registry import create
from ..suites import Suite
from .schema import LeaderboardError


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



def state_dict_of(loaded: object, source: str) -> dict[str, torch.Tensor]:
    """The weights in a bench checkpoint ({"model": ...}) or a plain state dict."""
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    if not (isinstance(loaded, dict) and loaded
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items())):
        raise LeaderboardError(f"{source} holds no state dict (a bench best.pt or a dict of tensors)")
    return loaded


def load_weights(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """Weights from checkpoint bytes (those whose sha256 was checked, not the file again);
    load_checkpoint loads with weights_only=True, which never runs code from the file."""
    if not data:
        raise LeaderboardError(f"{source} is empty (0 bytes): pass the run's best.pt, or copy the file again")
    try:
        loaded = load_checkpoint(io.BytesIO(data))
    except Exception as error:  # torch raises many kinds for a file that is not a safe checkpoint
        raise LeaderboardError(f"{source} cannot be loaded as weights only: {error}") from error
    return state_dict_of(loaded, source)


def build_learner(result: dict, suite: Suite, weights: dict[str, torch.Tensor]):
    """The result's learner with ``weights``, as the bench built it."""
    try:
        learner = create(result["model"], suite.task(), **result["hyperparameters"])
    except (TypeError, ValueError, RuntimeError) as error:  # what a constructor raises for arguments it rejects
        raise LeaderboardError(f"result.hyperparameters {result['hyperparameters']} do not build "
                               f"{result['model']}: {error}") from error
    try:
        learner.load_state_dict(weights)
    except RuntimeError as error:
        raise LeaderboardError(f"the checkpoint does not fit {result['model']} with "
                               f"{result['hyperparameters']}: {error}") from error
    return learner


def serialized(weights: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    return buffer.getvalue()


