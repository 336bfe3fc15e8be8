"""The one registry of learners: built-ins, entry-point plug-ins and ``module:Class`` specs.

Plug-ins register in the entry-point group ``fewshot_mem.models``::

    [project.entry-points."fewshot_mem.models"]
    my-model = "my_package.model:MyLearner"

or are named directly on the command line as ``my_package.model:MyLearner``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..errors import FewshotMemError
from .learner import Learner, TaskSpec

ENTRY_POINT_GROUP = "fewshot_mem.models"

BUILTIN_MODELS: dict[str, str] = {
    "mann": "fewshot_mem.models.mann:MANN",
    "mann-add": "fewshot_mem.models.mann:MANNWithAddVector",
    "mann-add-key-strength": "fewshot_mem.models.mann:MANNWithKeyStrength",
    "ntm": "fewshot_mem.models.ntm:NTM",
    "dnc": "fewshot_mem.models.dnc:DNC",
    "lstm": "fewshot_mem.models.lstm:LSTMLearner",
    "maml": "fewshot_mem.models.maml:MAMLLearner",
    "imaml": "fewshot_mem.models.imaml:IMAMLLearner",
    "protonet": "fewshot_mem.models.protonet:ProtoNetLearner",
    "knn-pixels": "fewshot_mem.models.knn:KNNPixelsLearner",
    "knn-features": "fewshot_mem.models.knn:KNNFeaturesLearner",
    "meta-lstm": "fewshot_mem.models.meta_lstm:MetaLSTMLearner",
}


class UnknownModelError(FewshotMemError):
    pass


def plugin_models() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_models() -> dict[str, str]:
    """Every registered name and the ``module:Class`` it stands for (plug-ins first; a built-in
    name keeps its built-in class even where a plug-in registers the same name)."""
    return {**plugin_models(), **BUILTIN_MODELS}


def _import(spec: str) -> type:
    module_name, _, attribute = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise UnknownModelError(f"cannot import learner {spec!r}: {error}") from error
    return target


def resolve(name: str) -> type[Learner]:
    """The learner class for a registered name or a ``package.module:Class`` spec."""
    models = available_models()
    if name in models:
        spec = models[name]
    elif ":" in name:
        spec = name
    else:
        raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(sorted(models))}, "
                                "or a plug-in as package.module:Class")
    learner = _import(spec)
    if not (isinstance(learner, type) and issubclass(learner, Learner)):
        raise UnknownModelError(f"{spec!r} is not a fewshot_mem Learner subclass")
    return learner


def builtins_of(kind: type[Learner] = Learner) -> list[str]:
    """The built-in names whose class is a ``kind`` (``SequenceLearner``: the sequence models), in
    registry order."""
    return [name for name in BUILTIN_MODELS if issubclass(resolve(name), kind)]


def default_models() -> list[str]:
    """The built-ins the bench runs when no models are named: those whose class is
    ``in_default_bench``, in registry order."""
    return [name for name in BUILTIN_MODELS if resolve(name).in_default_bench]


def model_label(name: str) -> str:
    """A model's display label: its class's ``label``, else its name (also for a plug-in named in
    results that cannot be imported here)."""
    try:
        return resolve(name).label or name
    except FewshotMemError:
        return name


def create(name: str, task: TaskSpec, **hyperparameters) -> Learner:
    """Builds a learner for ``task`` with the paper's defaults unless overridden."""
    return resolve(name)(task, **hyperparameters)
