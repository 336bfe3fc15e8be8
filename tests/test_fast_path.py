"""Every registered SequenceLearner that overrides ``run`` computes the step loop's function
and gradients in float64 (fewshot_mem.models.fast_path_check), with each controller kind."""

from __future__ import annotations

import pytest
import torch

from fewshot_mem.models import fast_path_check
from fewshot_mem.models.learner import SequenceLearner, TaskSpec
from fewshot_mem.models.mann import MANN
from fewshot_mem.models.registry import available_models, resolve

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(controller_size=7, memory_slots=6, memory_width=3, read_heads=2)
HYPERPARAMETERS = {"mann": TINY, "ntm": TINY, "dnc": TINY, "lstm": dict(controller_size=7)}
FEEDFORWARD = ("mann", "ntm")  # the models with a controller choice
TASK = TaskSpec(ways=4, image_shape=(1, 3, 3))


def sequence_models() -> list[str]:
    names = []
    for name in available_models():
        try:
            if issubclass(resolve(name), SequenceLearner):
                names.append(name)
        except Exception:  # noqa: BLE001 - a plug-in that does not import is the contract test's business
            continue
    return names


CASES = [(name, {}) for name in sequence_models()] + [(name, {"controller": "feedforward"}) for name in FEEDFORWARD]


@pytest.mark.parametrize(("name", "extra"), CASES, ids=[f"{n}-{'-'.join(e.values()) or 'default'}" for n, e in CASES])
def test_run_override_matches_the_step_loop(name, extra):
    torch.manual_seed(0)
    learner = resolve(name)(TASK, **HYPERPARAMETERS.get(name, resolve(name).test_hyperparameters), **extra)
    if name in HYPERPARAMETERS:
        assert fast_path_check.overrides_run(learner), f"{name} lost its fast run"
    fast_path_check.check_run_matches_steps(learner)


class _Broken(MANN):
    """A run override off by a relative 1e-6 in its scores: the check must catch it."""

    def run(self, features, previous_codes, state):
        outputs, state = super().run(features, previous_codes, state)
        return outputs + 1e-6 * outputs.detach()[:, :1], state


def test_the_check_catches_a_wrong_override():
    learner = _Broken(TASK, **TINY)
    with pytest.raises(AssertionError, match="scores"):
        fast_path_check.check_run_matches_steps(learner)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mann", "mann-add-key-strength", "ntm", "dnc"])
def test_compiled_steps_compute_the_same_function(name):
    """The per-step pieces compiled by torch.compile (tens of seconds to compile a model)."""
    torch.manual_seed(0)
    fast_path_check.check_run_matches_steps(resolve(name)(TASK, **TINY).compile_steps())


@pytest.mark.slow
def test_batched_product_compiled_is_the_batched_product():
    """fused_steps.batched_product: eagerly torch.bmm / baddbmm bit for bit; compiled, its loop form
    gives the same values (float64), with and without the added term."""
    from fewshot_mem.models.fused_steps import batched_product

    generator = torch.Generator().manual_seed(0)
    a, b, add = (torch.randn(*shape, dtype=torch.float64, generator=generator)
                 for shape in ((3, 4, 5), (3, 5, 6), (3, 4, 6)))
    assert torch.equal(batched_product(a, b), torch.bmm(a, b))
    assert torch.equal(batched_product(a, b, add), torch.baddbmm(add, a, b))
    compiled = torch.compile(batched_product)
    torch.testing.assert_close(compiled(a, b), torch.bmm(a, b))
    torch.testing.assert_close(compiled(a.transpose(1, 2).contiguous().transpose(1, 2), b, add),
                               torch.baddbmm(add, a, b))


@pytest.mark.parametrize("name", [n for n in sequence_models() if hasattr(resolve(n), "fused_access")])
def test_a_models_compiled_steps_are_made_once_per_process(name):
    """``fused_run`` compiles a time step once per loop (``_plain_steps`` is cached on ``_Loop``):
    the loops of two calls of ``fused_access`` are equal, or every training step would compile anew."""
    from fewshot_mem.models.fused_run import _Loop, _plain_steps

    learner = resolve(name)(TASK, **HYPERPARAMETERS.get(name, resolve(name).test_hyperparameters))
    accesses = [learner.fused_access() for _ in range(2)]
    if accesses[0] is None:
        pytest.skip(f"{name}'s access has no hand-derived backward")
    loops = [_Loop.of(access, lstm=True, compiled=False) for access in accesses]
    assert loops[0] == loops[1] and hash(loops[0]) == hash(loops[1])
    assert _plain_steps(loops[0]) is _plain_steps(loops[1])


@pytest.mark.slow
def test_two_models_compiled_in_one_process_keep_their_compiled_steps_apart():
    """Each loop's time steps have a code object of their own, so torch.compile keeps each model's
    compiled steps apart: a second model compiled in the process neither adds to the first one's
    list nor checks its guards (they had shared one list, and the second model trained a third slower)."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from fewshot_mem.models.fused_run import _Loop, _plain_steps

    learners = [resolve(name)(TASK, **TINY).compile_steps() for name in ("mann", "ntm")]
    steps = [_plain_steps(_Loop.of(learner.fused_access(), lstm=True, compiled=True)) for learner in learners]
    codes = {function.__code__ for pair in steps for function in pair}
    assert len(codes) == 4
    torch.manual_seed(0)
    for learner in learners:  # one training step each: compiles its forward and backward step
        fast_path_check.check_run_matches_steps(learner)
    for pair in steps:
        for function in pair:
            entries = _debug_get_cache_entry_list(function.__code__)
            assert entries, f"{function.__name__} was never compiled"
            assert all(entry.code is not None for entry in entries)
