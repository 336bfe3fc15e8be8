"""The readings of Santoro et al. that reimplementations differ on, as MANN hyper-parameters and
training settings (issue 19's ablation, ``benchmarks/mann_ablation.py``): each is the function
it says, the defaults are unchanged, and the fast ``run`` stays the step loop's function."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshot_mem.data.episodes import SequenceBatch
from fewshot_mem.memory import addressing, lru
from fewshot_mem.models import fast_path_check
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.mann import MANN
from fewshot_mem.models.registry import resolve
from fewshot_mem.train import TrainConfig, clip_gradients, is_complete, loss_scale

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(controller_size=7, memory_slots=6, memory_width=3, read_heads=2)
TASK = TaskSpec(ways=4, image_shape=(1, 3, 3))
VARIANTS = [dict(forget_bias=1.0), dict(add_vector="separate"), dict(read_memory="previous"),
            dict(least_used="per-head"), dict(key_strength="learned"),
            dict(add_vector="separate", key_strength="learned")]


def T(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_least_used_per_head_gives_head_h_the_h_th_least_used_slot():
    # usage 0.3, 0.1, 0.5, 0.2: ascending slots 1, 3, 0, 2; ties go to the lower index.
    assert lru.least_used_per_head(T([[0.3, 0.1, 0.5, 0.2]]), 2).tolist() == [[[0, 1, 0, 0], [0, 0, 0, 1]]]
    assert lru.least_used_per_head(T([[0.0, 0.0, 0.0]]), 3).tolist() == [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]


def test_write_weights_take_one_least_used_row_per_head():
    read_w, gates = T([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), T([[0.0, 0.0]])  # σ(0) = 1/2
    per_head = T([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    assert lru.lru_write_weights(read_w, per_head, gates).tolist() == [[[0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_each_variant_runs_the_step_loops_function(variant):
    torch.manual_seed(0)
    fast_path_check.check_run_matches_steps(MANN(TASK, **TINY, **variant))


def test_the_default_is_the_paper_access_and_variants_leave_the_other_weights_alone():
    torch.manual_seed(0)
    paper = MANN(TASK, **TINY)
    torch.manual_seed(0)
    shifted = MANN(TASK, **TINY, forget_bias=1.0)
    for learner in (paper, shifted):  # each variant's first reading is the paper's, and the default
        assert all(getattr(learner, name) == readings[0] for name, readings in MANN.VARIANTS.items())
    size = TINY["controller_size"]
    difference = {name: (shifted.state_dict()[name] - value) for name, value in paper.state_dict().items()}
    assert torch.allclose(difference["controller.core.bias_ih"][size : 2 * size], torch.ones(size))
    assert all(not d.any() for name, d in difference.items() if name != "controller.core.bias_ih")
    assert not difference["controller.core.bias_ih"][:size].any()


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_the_hand_derived_access_covers_the_add_vector_and_the_key_strength(variant):
    """``run`` takes the fused time loop (one autograd node, ``fused_run``) for the add vector and
    the key strength, and records ``access`` step by step only for M_{t−1} reads and per-head
    least-used slots (``test_each_variant_runs_the_step_loops_function`` checks either against the
    step loop)."""
    learner = MANN(TASK, **TINY, **variant).double()
    fused = variant.get("read_memory") != "previous" and variant.get("least_used") != "per-head"
    assert (learner.fused_access() is not None) == fused
    features = torch.randn(2, 3, learner.encoder.output_size, dtype=torch.float64)
    codes = torch.zeros(2, 3, TASK.code_size, dtype=torch.float64)
    _, (_, _, memory, *_) = learner.run(features, codes, learner.initial_state(2, features))
    assert ("FusedRun" in type(memory.grad_fn).__name__) == fused


def _one_access(learner: MANN, memory: torch.Tensor, interface: torch.Tensor):
    state = learner.initial_state(1, memory)
    return learner.access(interface, (memory, *state[3:6]))


def test_previous_memory_reads_what_was_there_before_the_write():
    learner = MANN(TASK, **TINY).double()
    memory = torch.rand(1, 6, 3, dtype=torch.float64)
    interface = torch.randn(1, 2 * 4, dtype=torch.float64)
    learner.read_memory = "previous"
    (written, read_w, *_), reads = _one_access(learner, memory, interface)
    keys = torch.tanh(interface[:, :6]).view(1, 2, 3)
    expected_w = addressing.content_weights(memory, keys, torch.ones(1, 2, dtype=torch.float64))
    assert torch.allclose(read_w, expected_w)
    assert torch.allclose(reads, addressing.read(memory, expected_w).flatten(1))
    learner.read_memory = "written"
    (written_too, read_w_written, *_), _ = _one_access(learner, memory, interface)
    assert torch.equal(written, written_too) and not torch.allclose(read_w, read_w_written)


def test_a_separate_add_vector_is_written_instead_of_the_key():
    learner = MANN(TASK, **TINY, add_vector="separate").double()
    assert learner.interface.out_features == 2 * (3 + 1) + 2 * 3
    memory = torch.zeros(1, 6, 3, dtype=torch.float64)
    interface = torch.randn(1, learner.interface.out_features, dtype=torch.float64)
    (written, *_), _ = _one_access(learner, memory, interface)
    state = learner.initial_state(1, memory)
    write_w = lru.lru_write_weights(state[3], state[5], interface[:, 6:8])
    added = torch.tanh(interface[:, 8:]).view(1, 2, 3)
    assert torch.allclose(written, addressing.add_write(memory, write_w, added))


def test_read_weights_are_the_step_s_content_weights_over_the_written_memory():
    """MANN.read_weights picks w^r_t out of the state a step returns (what accuracy_by_step reads)."""
    torch.manual_seed(0)
    learner = MANN(TASK, **TINY).double()
    features = torch.randn(3, learner.encoder.output_size, dtype=torch.float64)
    state = learner.initial_state(3, features)
    _, state = learner.step(features, torch.zeros(3, TASK.code_size, dtype=torch.float64), state)
    hidden, memory = state[0], state[2]
    keys = torch.tanh(learner.interface(hidden)[:, :6]).view(3, 2, 3)
    expected = addressing.content_weights(memory, keys, torch.ones(3, 2, dtype=torch.float64))
    assert torch.allclose(learner.read_weights(state), expected)


@pytest.mark.parametrize("setting", [dict(add_vector="value"), dict(read_memory="next"), dict(least_used="all")])
def test_an_unknown_variant_is_refused(setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        MANN(TASK, **TINY, **setting)


def test_clipping_by_value_clips_each_element_and_by_norm_the_whole():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([30.0, -4.0]), torch.tensor([-12.0])
    clip_gradients([a, b], 10.0, "value")
    assert a.grad.tolist() == [10.0, -4.0] and b.grad.tolist() == [-10.0]
    a.grad, b.grad = torch.tensor([30.0, -40.0]), torch.tensor([0.0])
    clip_gradients([a, b], 10.0, "norm")
    assert torch.allclose(a.grad, torch.tensor([6.0, -8.0]))
    with pytest.raises(ValueError):
        TrainConfig("quick", episodes=1, gradient_clip_mode="elementwise")


def test_a_summed_loss_is_the_sum_over_each_episode_averaged_over_episodes():
    logits, targets = torch.randn(3, 5, 4), torch.randint(0, 4, (3, 5))
    empty = torch.zeros(0)
    batch = SequenceBatch(images=empty, labels=targets, codes=empty, previous_codes=empty, instance_index=empty,
                          classes=empty, instances=empty, strings=None)
    mean = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    summed = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum") / 3
    config = TrainConfig("quick", episodes=1, loss_reduction="sum")
    assert torch.allclose(mean * loss_scale(config, batch), summed)
    assert loss_scale(TrainConfig("quick", episodes=1), batch) == 1.0


def test_a_run_saved_before_the_new_settings_existed_is_still_complete(tmp_path):
    config = TrainConfig("quick", episodes=32, batch_size=16)
    old = {k: v for k, v in config.__dict__.items() if k not in ("gradient_clip_mode", "loss_reduction")}
    state = {"model": {}, "optimizer": {}, "step": 2, "best_step": 2, "best_score": 0.5, "config": old}
    torch.save(state, tmp_path / "last.pt")
    torch.save({"model": {}, "step": 2, "score": 0.5}, tmp_path / "best.pt")
    assert is_complete(tmp_path, config)
    assert not is_complete(tmp_path, TrainConfig("quick", episodes=32, batch_size=16, loss_reduction="sum"))


@pytest.mark.parametrize("add_vector", ["key", "separate"])
def test_a_learned_key_strength_reads_with_the_softplus_of_its_own_interface_entries(add_vector):
    """key_strength="learned": the interface's last R entries are β̂, and the reads are
    softmax(softplus(β̂) K(k, M)) of the memory just written; the keys, gates and add vectors are
    read from where they were before. With β̂ large the read is sharper than the paper's β = 1."""
    torch.manual_seed(0)
    plain = MANN(TASK, **TINY, add_vector=add_vector).double()
    learned = MANN(TASK, **TINY, add_vector=add_vector, key_strength="learned").double()
    assert learned.interface.out_features == plain.interface.out_features + 2
    memory = torch.rand(1, 6, 3, dtype=torch.float64)
    interface = torch.randn(1, plain.interface.out_features, dtype=torch.float64)
    raw_strength = T([[3.0, -1.0]])
    (written, read_w, *_), reads = _one_access(learned, memory, torch.cat([interface, raw_strength], 1))
    (written_plain, read_w_plain, *_), _ = _one_access(plain, memory, interface)
    assert torch.equal(written, written_plain)  # the strengths change the read alone
    keys = torch.tanh(interface[:, :6]).view(1, 2, 3)
    expected = addressing.content_weights(written, keys, F.softplus(raw_strength))
    assert torch.allclose(read_w, expected) and torch.allclose(reads, addressing.read(written, expected).flatten(1))
    assert read_w[0, 0].max() > read_w_plain[0, 0].max()  # β = softplus(3) ≈ 3.05 > 1


def test_the_named_key_strength_model_is_mann_add_with_a_learned_key_strength():
    """``mann-add-key-strength`` is the registered name of the reading that learned Table 2: the
    same weights, and so the same outputs, as ``mann-add`` with ``--set key_strength=learned``, under
    a label of its own."""
    named, add = resolve("mann-add-key-strength"), resolve("mann-add")
    torch.manual_seed(0)
    learner = named(TASK, **TINY)
    torch.manual_seed(0)
    overridden = add(TASK, **TINY, key_strength="learned")
    assert (learner.add_vector, learner.key_strength) == ("separate", "learned")
    assert all(torch.equal(a, b) for a, b in zip(learner.state_dict().values(), overridden.state_dict().values()))
    assert len({named.label, add.label, MANN.label}) == 3
    assert not named.in_default_bench
