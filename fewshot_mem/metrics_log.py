"""A training run's log, ``metrics.jsonl``: one JSON line per logged step, per validation, and
per session (the step it started from and its code's commit), appended as training goes, and
mirrored to wandb when asked (offline unless configured).

Appending is safe without ``write_atomically``: a killed writer can only tear the last line,
which :func:`read_metrics` skips and a resumed run redoes (:func:`drop_records_after`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import RunFileError
from .paths import write_atomically


class MetricsLog:
    """Appends JSON lines locally, and to wandb when asked (offline unless configured)."""

    def __init__(self, path: Path, use_wandb: bool = False, run_config: dict | None = None,
                 enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled  # off on all ranks but rank 0
        self.wandb = None
        if use_wandb and enabled:
            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")
            self.wandb = wandb.init(project="fewshot-mem", dir=str(path.parent), config=run_config or {},
                                    reinit=True)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


def read_metrics(path: Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl``, in order (none if there is no file).

    A last line without its newline that does not parse was cut off by a killed writer: it is
    skipped (its step is redone on resume). Anything else that does not parse is damage.

    Raises:
        RunFileError: naming the file and line, and how to recover.
    """
    try:
        lines = path.read_text().split("\n")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise RunFileError(f"the metrics log {path} cannot be read ({error}). Delete it, or move it aside, "
                           "and rerun (the learning curve then starts afresh).") from error
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not a record with a step")
        except ValueError as error:
            if number == len(lines):  # the last line, with no newline after it: a torn write
                break
            raise RunFileError(f"{path}, line {number}, is not a metrics record ({error}). Delete that line "
                               "(its record is then missing from the learning curve) and rerun.") from error
        records.append(record)
    return records


def drop_records_after(log: Path, step: int) -> None:
    """Resuming redoes the steps after the checkpoint; their records from the killed session go
    (and a line the killed writer tore), so the log (and the learning curve) has each step once."""
    if log.exists():
        kept = "".join(json.dumps(record) + "\n" for record in read_metrics(log) if record["step"] <= step)
        write_atomically(kept.encode(), log)
