"""The verification record `verify --record` keeps in an entry: which code re-measured it,
when, where, and how close it came. It names the sha256 of the results it vouches for, so an
entry whose results or weights change afterwards is no longer marked verified."""

from __future__ import annotations

import platform
from datetime import date
from pathlib import Path

import torch

from ..results import git_commit
from ..report import write_json
from .schema import LeaderboardError
from .validate import read_json, results_digest
from .verify import Verification


def this_machine(device: str) -> str:
    threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None
    where = gpu or f"{platform.machine()} CPU, {threads} thread{'s' * (threads != 1)}"
    return f"{where}, torch {torch.__version__}"


def record_verification(path: Path, verification: Verification, device: str) -> dict:
    """Writes the record of a passed verification into the entry file; returns it."""
    if not verification.ok:
        raise ValueError("only a passed verification is recorded")
    entry = read_json(path)
    if results_digest(entry) != verification.results_sha256:
        raise LeaderboardError(f"{path} changed while it was being verified: nothing recorded")
    entry["verification"] = {"results_sha256": verification.results_sha256, "commit": git_commit(),
                             "date": date.today().isoformat(), "hardware": this_machine(device),
                             "differing_episodes": verification.differing_episodes,
                             "seconds": verification.seconds}
    write_json(entry, path)
    return entry["verification"]
