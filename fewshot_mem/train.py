"""The training loop: budgets, atomic checkpoints, resume, validation, logging.

Step ``s`` trains on episodes ``s·B .. s·B + B − 1`` of the training sampler,
so a resumed run sees exactly the episodes an uninterrupted one would, and
(with the optimizer state restored) ends with the same weights.

Files in the run directory:

* ``last.pt``: model, optimizer and progress, written atomically every
  ``checkpoint_every`` steps and at the end (``--resume`` continues from it);
* ``best.pt``: the weights with the best validation score, used for test;
* ``metrics.jsonl``: one JSON line per logged step and per validation (the learning curve), and
  one per session (start or resume) naming the commit of the code that trains from that step;
* ``.lock``: locked by the training process, so a second one in the same directory is refused.

A damaged ``last.pt`` makes the run unfinished (a plain rerun trains it again); every file
that cannot be read raises a :class:`~fewshot_mem.errors.FewshotMemError` naming it.

Under ``torchrun`` the same loop trains with DistributedDataParallel: each rank
computes its share of step ``s``'s episodes (``distributed.shard_batch``), DDP
averages the gradients, validation is sharded across ranks, and rank 0 alone
reads and writes the files above. The checkpoints hold the learner's own
state dict, never DDP's wrapper, so they load in one process as they are.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .checkpoints import LAST_KEYS, load_checkpoint, save_checkpoint
from .data.episodes import correct_predictions
from .errors import CheckpointError, FewshotMemError
from .metrics_log import MetricsLog, drop_records_after
from .models.learner import Learner, batch_targets, predictions
from .paths import locked
from .recipes import TrainConfig
from .results import training_session


class TrainingDiverged(FewshotMemError):
    pass


@dataclass
class TrainSummary:
    steps: int
    episodes: int
    seconds: float
    best_step: int
    best_score: float
    resumed_from: int


class TrainingClock:
    """A run's training time over every session: wall clock, and CPU time.

    Resumed from ``last.pt``'s ``train_seconds`` and ``train_cpu_seconds``. The CPU time is
    that of every training process (all ranks under torchrun): unlike the wall clock, it does
    not count the time a run stood paused or waited for a busy core. It is None for a run
    begun before it was kept, whose earlier sessions' CPU time is unknown.
    """

    def __init__(self, wall_before: float = 0.0, cpu_before: float | None = 0.0) -> None:
        self._wall_before, self._cpu_before = wall_before, cpu_before
        self._wall_started, self._cpu_started = time.perf_counter(), time.process_time()

    @classmethod
    def resumed_from(cls, state: dict | None) -> "TrainingClock":
        if state is None:
            return cls()
        return cls(state.get("train_seconds", 0.0), state.get("train_cpu_seconds"))

    def session_seconds(self) -> float:
        """Wall-clock seconds since this session began."""
        return time.perf_counter() - self._wall_started

    def wall_seconds(self) -> float:
        return self._wall_before + self.session_seconds()

    def cpu_seconds(self) -> float | None:
        """Summed over ranks, so under torchrun every rank calls it at the same step."""
        if self._cpu_before is None:
            return None
        session = distributed.all_sum(torch.tensor(time.process_time() - self._cpu_started, dtype=torch.float64))
        return self._cpu_before + float(session)


def _save_from_main(payload: dict, path: Path) -> None:
    if distributed.is_main():  # every rank holds the same weights: one writes them
        save_checkpoint(payload, path)


def _resume_state(path: Path) -> dict | None:
    return load_checkpoint(path, keys=LAST_KEYS) if path.exists() else None


class LossAndLogits(nn.Module):
    """A learner's training loss as a module's ``forward``.

    DistributedDataParallel averages gradients only for what runs through its own
    ``forward`` (that is where it prepares the backward pass); learners are trained
    through ``loss_and_logits``, so this is what DDP wraps. MAML's learn2learn clones
    are made inside that call and differentiated through, so its meta-gradient
    reaches the wrapped parameters like any other.
    """

    def __init__(self, learner: Learner) -> None:
        super().__init__()
        self.learner = learner

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        # The learner sees the inputs; the targets go to its loss apart (what is scored stays here).
        return self.learner.loss_and_logits(batch.inputs(), batch_targets(batch))


def _batch_accuracy(logits: torch.Tensor, batch) -> dict[str, float]:
    """Accuracy over the whole step's batch (every rank's hits and predictions, summed); for string
    labels also the share of characters right, which moves long before all five are right at once."""
    guessed, targets = predictions(logits.detach()), batch_targets(batch)
    correct = correct_predictions(guessed, targets).float()
    characters = (guessed == targets).float() if targets.ndim == 3 else correct
    hits, count, character_hits, character_count = distributed.all_sum(torch.stack([
        correct.sum(), correct.new_tensor(correct.numel()), characters.sum(),
        characters.new_tensor(characters.numel())])).tolist()
    figures = {"accuracy": hits / count}
    if targets.ndim == 3:
        figures["character_accuracy"] = character_hits / character_count
    return figures


def build_optimizer(learner: nn.Module, config: TrainConfig, capturable: bool = False) -> torch.optim.Optimizer:
    """``config``'s optimizer over the learner's parameters (``capturable`` to step inside a CUDA graph)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(learner.parameters(), lr=config.learning_rate, capturable=capturable)
    if config.optimizer == "rmsprop":  # Santoro et al. and Graves et al.
        return torch.optim.RMSprop(learner.parameters(), lr=config.learning_rate, momentum=0.9, alpha=0.95,
                                   capturable=capturable)
    raise ValueError(f"unknown optimizer {config.optimizer!r}: use adam or rmsprop")


def loss_scale(config: TrainConfig, batch) -> float:
    """What the mean loss is multiplied by for ``config.loss_reduction``: 1, or the predictions
    per episode (so "sum" sums over an episode's steps and characters, and averages over episodes)."""
    if config.loss_reduction == "mean":
        return 1.0
    if config.loss_reduction == "sum":
        targets = batch_targets(batch)
        return targets[0].numel()
    raise ValueError(f"unknown loss_reduction {config.loss_reduction!r}: use mean or sum")


def clip_gradients(parameters: Iterable[nn.Parameter], clip: float | None, mode: str = "norm") -> None:
    """Clips the gradients: not at all (``clip`` None or 0), their global norm to ``clip``
    (``mode`` "norm"), or each element to ±``clip`` ("value")."""
    if not clip:
        return
    if mode == "norm":
        torch.nn.utils.clip_grad_norm_(parameters, clip)
    elif mode == "value":
        torch.nn.utils.clip_grad_value_(parameters, clip)
    else:
        raise ValueError(f"unknown gradient clip mode {mode!r}: use norm or value")


def _learning_rate(config: TrainConfig, step: int) -> float:
    if not config.halve_learning_rate_every:
        return config.learning_rate
    return config.learning_rate * 0.5 ** ((step * config.batch_size) // config.halve_learning_rate_every)


def fit(learner: Learner, sample: Callable[[np.ndarray], object],
        validate: Callable[[Learner], float | dict[str, float]],
        config: TrainConfig, run_dir: Path, *, seed: int = 0, resume: bool = False, progress: bool = True,
        device: str | torch.device = "cpu", use_wandb: bool = False, run_config: dict | None = None
        ) -> TrainSummary:
    """Trains ``learner`` in place and leaves ``best.pt`` and ``last.pt`` in ``run_dir``.

    Args:
        sample: episode ids -> a batch (SequenceBatch or EpisodeBatch): a step's B ids, or under
            torchrun this rank's share of them.
        validate: learner -> a score to maximize (accuracy on validation classes), or a dict
            with that score under "score" and further figures to log beside it (the learning curve).
        resume: continue from ``last.pt`` if there is one (else start afresh).

    Raises:
        DirectoryInUseError: another process is training in ``run_dir``; nothing was changed.
        CheckpointError, RunFileError: ``resume`` and ``last.pt`` or ``metrics.jsonl`` is damaged.
        TrainingDiverged: the loss stopped being finite.
    """
    with ExitStack() as held:
        # One training per run directory: rank 0, which alone writes in it, holds its lock throughout.
        distributed.from_main(held.enter_context, locked(run_dir, "training"))
        return _train(learner, sample, validate, config, run_dir, resume=resume, progress=progress,
                      device=device, use_wandb=use_wandb, run_config=run_config)


def _train(learner: Learner, sample: Callable[[np.ndarray], object],
           validate: Callable[[Learner], float | dict[str, float]], config: TrainConfig, run_dir: Path, *,
           resume: bool, progress: bool, device: str | torch.device, use_wandb: bool, run_config: dict | None
           ) -> TrainSummary:
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
    session = _Session(learner, config, run_dir, resume=resume, device=device,
                       log_config={**(run_config or {}), **asdict(config)}, use_wandb=use_wandb)
    if config.steps == 0 and session.start_step == 0:  # nothing to train (kNN on raw pixels): the weights as built
        session.validate_and_keep_best(0, validate)
        session.checkpoint(0)
    bar = tqdm(total=config.steps, initial=session.start_step, unit="step", desc="training",
               disable=not (progress and distributed.is_main()))
    try:
        for step in range(session.start_step + 1, config.steps + 1):
            loss_value, logits, batch = session.train_step(step, sample)
            if step % config.log_every == 0 or step == config.steps:
                bar.set_postfix(**session.log_step(step, loss_value, logits, batch))
            if step % config.validate_every == 0 or step == config.steps:
                session.validate_and_keep_best(step, validate)
            if step % config.checkpoint_every == 0 or step == config.steps:
                session.checkpoint(step)
            bar.update(1)
    finally:
        bar.close()
        session.log.close()
    return TrainSummary(steps=config.steps, episodes=config.steps * config.batch_size,
                        seconds=session.clock.session_seconds(), best_step=session.best_step,
                        best_score=session.best_score, resumed_from=session.start_step)


class _Session:
    """One session of a training run: the learner and its optimizer, resumed from ``last.pt`` when
    asked, the run's log and clock, and where the run stands (the best validation so far, the last
    checkpoint). Under torchrun every rank holds one and calls its methods at the same steps."""

    def __init__(self, learner: Learner, config: TrainConfig, run_dir: Path, *, resume: bool,
                 device: str | torch.device, log_config: dict, use_wandb: bool) -> None:
        self.learner, self.config, self.device = learner, config, device
        self.last_path, self.best_path = run_dir / "last.pt", run_dir / "best.pt"
        self.optimizer = build_optimizer(learner, config)
        state = distributed.from_main(_resume_state, self.last_path) if resume else None  # rank 0 reads, all resume
        self.clock = TrainingClock.resumed_from(state)
        self.start_step, self.best_step, self.best_score = 0, 0, -math.inf
        if state is not None:
            learner.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.start_step, self.best_step, self.best_score = state["step"], state["best_step"], state["best_score"]
            distributed.from_main(drop_records_after, run_dir / "metrics.jsonl", self.start_step)
        elif distributed.is_main() and (run_dir / "metrics.jsonl").exists():
            (run_dir / "metrics.jsonl").unlink()  # a fresh run starts a fresh log
        self.saved_step = self.start_step
        learner.to(device)
        self.model = distributed.data_parallel(LossAndLogits(learner), device)  # DDP averages gradients over ranks
        self.log = MetricsLog(run_dir / "metrics.jsonl", use_wandb, log_config, enabled=distributed.is_main())
        # A resumed run may continue under newer code: the log says which commit trained which steps.
        self.log.write({"step": self.start_step, "session": training_session(str(device))})
        self._window_start, self._window_episodes = time.perf_counter(), 0

    def train_step(self, step: int, sample: Callable[[np.ndarray], object]) -> tuple[float, torch.Tensor, object]:
        """One optimizer step on step ``step``'s episodes (this rank's share of them): the whole
        batch's mean loss, and this rank's logits and batch."""
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = _learning_rate(config, step - 1)
        self.model.train()
        ids = np.arange((step - 1) * config.batch_size, step * config.batch_size)
        own, weight = distributed.shard_batch(ids)
        batch = sample(own).to(self.device)
        loss, logits = self.model(batch)
        loss = loss * weight  # exact in one process (weight 1); see distributed.shard_batch
        # The whole batch's mean loss, on every rank: all stop together if it is not finite.
        loss_value = float(distributed.all_sum(loss.detach())) / distributed.world_size()
        if not math.isfinite(loss_value):
            kept = f"the last good checkpoint, {self.last_path} (step {self.saved_step}), is kept" \
                if self.saved_step else "no checkpoint had been written yet"
            raise TrainingDiverged(f"the loss became {loss_value} at step {step}; training stopped and {kept}.")
        self.optimizer.zero_grad(set_to_none=True)
        (loss * loss_scale(config, batch)).backward()
        clip_gradients(self.learner.parameters(), config.gradient_clip, config.gradient_clip_mode)
        self.optimizer.step()
        self._window_episodes += len(ids)
        return loss_value, logits, batch

    def log_step(self, step: int, loss_value: float, logits: torch.Tensor, batch) -> dict[str, str]:
        """Logs a step's loss and accuracy, and the episodes a second since the last logged step;
        returns them as the progress bar shows them."""
        accuracy = _batch_accuracy(logits, batch)
        rate = self._window_episodes / max(time.perf_counter() - self._window_start, 1e-9)
        self._window_start, self._window_episodes = time.perf_counter(), 0
        compiled = {"compiled_steps": True} if getattr(self.learner, "compiled_steps", False) else {}
        self.log.write({"step": step, "episodes": step * self.config.batch_size, "loss": loss_value,
                        **accuracy, "episodes_per_second": rate, **compiled})
        shown = {"chars": f"{accuracy['character_accuracy']:.3f}"} if "character_accuracy" in accuracy else {}
        return {"loss": f"{loss_value:.3f}", "acc": f"{accuracy['accuracy']:.3f}", **shown,
                "eps": f"{rate:.0f}/s"}

    def validate_and_keep_best(self, step: int, validate: Callable[[Learner], float | dict[str, float]]) -> None:
        distributed.broadcast_buffers(self.learner)  # score the weights rank 0 would save
        validation = validate(self.learner)
        figures = validation if isinstance(validation, dict) else {"score": validation}
        score = figures["score"]
        self.log.write({"step": step, "episodes": step * self.config.batch_size,
                        "seconds": round(self.clock.wall_seconds(), 1), "validation_score": score,
                        **{f"validation_{name}": value for name, value in figures.items() if name != "score"}})
        if score > self.best_score:
            self.best_step, self.best_score = step, score
            _save_from_main({"model": self.learner.state_dict(), "step": step, "score": score}, self.best_path)

    def checkpoint(self, step: int) -> None:
        self.saved_step = step
        _save_from_main({"model": self.learner.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "step": step, "best_step": self.best_step, "best_score": self.best_score,
                         "config": asdict(self.config), "train_seconds": self.clock.wall_seconds(),
                         "train_cpu_seconds": self.clock.cpu_seconds()}, self.last_path)


def is_complete(run_dir: Path, config: TrainConfig) -> bool:
    """Whether ``run_dir`` holds a finished run of ``config`` (so it can be reused)."""
    last = run_dir / "last.pt"
    if not last.exists() or not (run_dir / "best.pt").exists():
        return False
    try:
        state = load_checkpoint(last, keys=LAST_KEYS)
    except CheckpointError:  # a damaged last.pt is an unfinished run: a plain rerun trains it again
        return False
    # A run saved before a setting existed ran with its default: fill it in before comparing.
    saved = {**asdict(TrainConfig(config.budget, episodes=0)), **state["config"]}
    return state["step"] >= config.steps and saved == asdict(config)
