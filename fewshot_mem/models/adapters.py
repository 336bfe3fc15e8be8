"""Adapters: a plain ``nn.Module`` (or function) scored on the suites without subclassing Learner.

* :class:`Prototypes`: an embedding network, images (M, c, H, W) float in [0, 1] -> (M, D);
  queries are scored by negative squared distance to the class prototypes (both protocols:
  online, unseen labels get the calibrated novelty score of ``models.online``).
* :class:`EpisodicFunction`: ``function(support_images, support_labels, query_images) -> logits``
  for one episode: (N·K, c, H, W) float, (N·K,) int64, (N·Q, c, H, W) float -> (N·Q, N)
  (episodic protocol only).
* :class:`RecurrentStep`: ``step(image, previous_code, state) -> (scores, state)`` for one time
  step: (B, c, H, W) float, (B, N) one-hot float code of y_{t−1} (zeros at t = 1), the state it
  returned last (None at the first step; a tensor or a tuple of tensors, batch first) -> (B, N)
  scores. It answers both protocols, as every sequence learner does (``SequenceLearner``).

Each adapter records how to rebuild itself: the network's class (or function) as an importable
``module:Name`` and its constructor's keyword arguments (``network_kwargs``), so ``leaderboard
verify`` can rebuild it from a results JSON with ``registry.create``. A class defined in a script
run as ``python path/to/script.py`` is recorded as that file's module, relative to the current
folder (``path.to.script:Name``); verify must run from the same folder, and the script must keep
its work under ``if __name__ == "__main__":`` so importing it runs nothing. One-hot labels only.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..data.episodes import EpisodicInputs, OnlineInputs
from ..errors import FewshotMemError
from .learner import Learner, Protocol, SequenceLearner, State, TaskSpec, images_to_float
from .protonet import PrototypeScoring


def importable_name(obj: Any) -> str:
    """``module:QualifiedName`` of a class or function, as ``registry`` and ``import_name`` read it."""
    module, name = obj.__module__, obj.__qualname__
    if module == "__main__":
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:  # python -m package.module
            module = spec.name
        elif getattr(main, "__file__", None):  # python path/to/script.py: that file as a module from here
            relative = Path(main.__file__).resolve().with_suffix("")
            try:
                module = ".".join(relative.relative_to(Path.cwd().resolve()).parts)
            except ValueError:
                module = relative.name
    return f"{module}:{name}"


def import_name(spec: str) -> Any:
    """The object a ``module:QualifiedName`` names."""
    module_name, _, name = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise FewshotMemError(f"cannot import {spec!r} to rebuild the model ({error}): define the network in a "
                              "module importable from here (not inside a function)") from error
    return target


def _network(network: nn.Module | Callable | str, network_kwargs: dict | None) -> tuple[Any, dict]:
    """The network (built from its ``module:Name`` and kwargs when given as a string) and the
    hyperparameters that rebuild it."""
    kwargs = dict(network_kwargs or {})
    if isinstance(network, str):
        spec, built = network, import_name(network)
        network = built(**kwargs) if isinstance(built, type) else built
    else:
        spec = importable_name(type(network) if isinstance(network, nn.Module) else network)
    return network, {"network": spec, "network_kwargs": kwargs}


class Prototypes(PrototypeScoring):
    """An embedding network scored with class prototypes (prototypical networks' rule).

    Args:
        task: set by ``fewshot_mem.evaluate`` from the suite when None.
        network: an ``nn.Module``, images (M, c, H, W) float in [0, 1] -> (M, D) embeddings; or its
            class as ``module:Name`` (how a results JSON records it).
        network_kwargs: the keyword arguments its class takes to rebuild it (recorded for verify).
    """

    supports_string_labels = False

    def __init__(self, task: TaskSpec | None = None, network: nn.Module | str | None = None, *,
                 network_kwargs: dict | None = None) -> None:
        super().__init__(task)
        self.embedding, self.hyperparameters = _network(network, network_kwargs)
        self._init_novelty()


class EpisodicFunction(Learner):
    """A function of one episode, ``(support_images, support_labels, query_images) -> logits``:
    (N·K, c, H, W) float in [0, 1], (N·K,) int64 in [0, N), (N·Q, c, H, W) -> (N·Q, N) scores.

    An ``nn.Module`` is registered (its weights are saved and submitted); a plain function has no
    weights. Evaluation runs under ``torch.no_grad``: a function that adapts by gradient descent
    turns gradients on itself (``torch.enable_grad``).
    """

    native_protocol: ClassVar[Protocol] = "episodic"
    protocols: ClassVar[tuple[Protocol, ...]] = ("episodic",)
    supports_string_labels = False

    def __init__(self, task: TaskSpec | None = None, network: nn.Module | Callable | str | None = None, *,
                 network_kwargs: dict | None = None) -> None:
        super().__init__(task)
        self.function, self.hyperparameters = _network(network, network_kwargs)

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        as_float = lambda images: images_to_float(images).to(self.dtype)  # noqa: E731
        return torch.stack([self.function(as_float(support), labels, as_float(queries))  # (N·Q, N) each
                            for support, labels, queries in zip(inputs.support_images, inputs.support_labels,
                                                                inputs.query_images)])  # (B, N·Q, N)

    def online_logits(self, inputs: OnlineInputs) -> torch.Tensor:
        raise self.unsupported("online")


class RecurrentStep(SequenceLearner):
    """A recurrent step module, ``step(image, previous_code, state) -> (scores, state)``:
    (B, c, H, W) float in [0, 1], (B, N) one-hot code of the previous label, the state it returned
    at the step before (None at the first) -> (B, N) scores and the new state (a tensor or a
    tuple of two or more tensors, batch first). Both protocols (``SequenceLearner``)."""

    supports_string_labels = False

    def __init__(self, task: TaskSpec | None = None, network: nn.Module | str | None = None, *,
                 network_kwargs: dict | None = None) -> None:
        super().__init__(task)
        self.cell, self.hyperparameters = _network(network, network_kwargs)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images_to_float(images)  # (B, T, c, H, W): the step module sees whole images

    def initial_state(self, batch_size: int, reference: torch.Tensor) -> State:
        return ()  # the step module makes its own at the first step

    def step(self, features: torch.Tensor, previous_code: torch.Tensor, state: State
             ) -> tuple[torch.Tensor, State]:
        # State travels as a tuple (SequenceLearner repeats each part per query); a single tensor as (tensor,)
        scores, state = self.cell(features, previous_code, None if not state else state[0] if len(state) == 1
                                  else state)
        return scores, (state,) if isinstance(state, torch.Tensor) else tuple(state)
