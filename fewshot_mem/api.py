"""Score a model from your own training loop: ``fewshot_mem.evaluate(model, "omniglot-5way-1shot@2")``.

The model is a ``Learner`` (built-in, plug-in) or a plain network in an adapter
(``Prototypes``, ``EpisodicFunction``, ``RecurrentStep``). It is scored by
``evaluate.evaluate_on_suite``, the bench's and ``leaderboard verify``'s own path, so the same
weights give the same per-episode results in all three. ``Results.save`` writes the results
JSON the bench writes, with the weights beside it, ready for ``leaderboard submit``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import save_checkpoint
from .evaluate import Estimate, ProtocolResult, evaluate_on_suite
from .models.learner import Learner
from .models.registry import available_models
from .report import render
from .results import CUSTOM_BUDGET, build_result, write_result
from .suites import Suite, cached_pools, get_suite


@dataclass
class Results:
    """What a model scored on a suite.

    ``tables`` maps each table ("online", "5-way-1-shot", ...) to its estimates (mean and 95% CI
    half-width, in [0, 1]) and per-episode accuracies (one list per estimate, in episode order);
    ``record`` is the results JSON's content; ``weights`` the state dict that was scored.
    """

    suite: str  # "name@version"
    fingerprint: str  # of the frozen test episodes scored (the suite's, unless episodes= cut them)
    tables: dict[str, ProtocolResult]
    record: dict = field(repr=False)
    weights: dict[str, torch.Tensor] = field(repr=False)

    def save(self, path: str | Path) -> Path:
        """Writes the results JSON (as the bench does) to ``path`` and the weights to ``path`` with the
        suffix .pt (recorded as its ``checkpoint``): ``leaderboard submit path`` takes both."""
        path = Path(path)
        checkpoint = path.with_suffix(".pt")
        save_checkpoint(self.weights, checkpoint)
        self.record["checkpoint"] = str(checkpoint)
        return write_result(self.record, path)

    def __str__(self) -> str:
        return render([self.record])


def _model_name(model: Learner) -> str:
    """A registered name where the class is registered, else its ``module:Class``."""
    spec = f"{type(model).__module__}:{type(model).__qualname__}"
    return next((name for name, registered in available_models().items() if registered == spec), spec)


def _tables(tables: dict[str, dict]) -> dict[str, ProtocolResult]:
    return {name: ProtocolResult(table["protocol"], {k: Estimate(**v) for k, v in table["estimates"].items()},
                                 table["per_episode"]) for name, table in tables.items()}


def evaluate(model: Learner, suite: str | Suite, data_root: str | Path | None = None, device: str = "cpu",
             episodes: int | None = None, *, hyperparameters: dict | None = None, seed: int = 0,
             progress: bool = False) -> Results:
    """Scores ``model`` on every table of ``suite`` (a name, "name@version", or a ``Suite``).

    Args:
        model: a ``Learner``; an adapter without a task is bound to the suite's.
        data_root: the data folder (default: $FEWSHOT_MEM_DATA, else data/).
        device: where to run it ("cpu", "cuda", ...); the model is moved there.
        episodes: score the first N frozen test episodes only (a quick look: such results carry
            another fingerprint and the leaderboard refuses them).
        hyperparameters: the keyword arguments that rebuild ``model`` with ``registry.create``
            (recorded for ``leaderboard verify``; adapters know their own).
        seed: the seed recorded with the result (the board tells runs apart by it).

    The model's weights and train/eval mode are as before afterwards (calibration, such as the
    novelty score of ``Prototypes``, works on a copy of its state and is redone by verify).
    """
    suite = get_suite(suite) if isinstance(suite, str) else suite
    if model.task is None:
        model.bind(suite.task())
    elif model.task != suite.task():
        raise ValueError(f"the model was built for {model.task}; {suite.id} asks for {suite.task()}")
    pools = cached_pools(suite, data_root)
    weights = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
    training, started = model.training, time.perf_counter()
    try:
        tables = evaluate_on_suite(model, suite, pools, episodes, device=device, progress=progress)
    finally:
        model.load_state_dict(weights)
        model.train(training)
    record = build_result(
        suite_id=suite.id, fingerprint=suite.fingerprint(pools["test"], episodes), model=_model_name(model),
        model_class=f"{type(model).__module__}:{type(model).__qualname__}",
        hyperparameters=hyperparameters if hyperparameters is not None else getattr(model, "hyperparameters", {}),
        tables=tables, budget=CUSTOM_BUDGET, seed=seed, device=device,
        eval_seconds=time.perf_counter() - started)
    return Results(suite.id, record["fingerprint"], _tables(tables), record, weights)
