"""MANN: the memory-augmented neural network of Santoro et al. (2016),
"Meta-learning with memory-augmented neural networks", ICML, with least-recently-used
access (LRUA)."""

from __future__ import annotations

import functools
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..memory import addressing, lru
from .fused_run import FusedAccess
from .fused_steps import lru_backward, lru_forward
from .learner import State, TaskSpec
from .memory_learner import MEMORY_INIT, MemoryLearner


class MANN(MemoryLearner):
    """An LSTM (or feedforward) controller with an external memory written by LRU access.

    At each step the controller reads [x_t, y_{t-1}, r_{t-1}] and emits one key
    k_t and one write gate α_t per head. Writes go to the previously read or
    the previously least-used slots (w^w = σ(α) w^r_{t-1} + (1 − σ(α)) w^lu_{t-1})
    and add the key there, after the least-used slot has been zeroed; reads are
    a softmax of cosine similarity to the keys. The output reads the controller
    state and the read vectors.

    Args (defaults are the paper's Omniglot settings):
        task: ways, label encoding and image shape.
        controller_size: LSTM units (200).
        memory_slots: N, memory rows (128).
        memory_width: W, row size (40).
        read_heads: R, read heads, each paired with a write (4).
        usage_decay: γ in w^u_t = γ w^u_{t-1} + w^r_t + w^w_t (0.95).
        controller: "lstm" or "feedforward".
        image_encoder: how images become features ("flatten": raw pixels; "conv4": Conv-4 features).

    Readings of the paper that public reimplementations differ on (the defaults are the paper's
    equations as written; ``benchmarks/mann_ablation.py`` measures each alternative):
        forget_bias: added to the initial forget-gate bias of an LSTM controller (0; TensorFlow's
            LSTM cell, used by the TensorFlow reimplementations, adds 1).
        add_vector: "key" writes the key k_t (the paper's M_t = M_{t−1} + w^w_t k_t^T); "separate"
            writes a tanh add vector a_t of its own, as the NTM and DNC do.
        read_memory: "written" reads M_t, the memory just written (the paper's order); "previous"
            reads M_{t−1}.
        least_used: "shared": every head's w^lu is the n-hot mark of the R least-used slots (the
            paper's w^lu with n = R); "per-head": head h's is the h-th least-used slot alone.
        key_strength: "none" reads with softmax(K(k, M)), the paper's equation (β = 1); "learned"
            reads with softmax(β K(k, M)), β = softplus(β̂) emitted per head, as the NTM's content
            addressing does. With β = 1 the best of 128 slots gets at most e² times the weight of
            the worst, so a read blurs over every slot written (README, "Table 2: where in the
            episode MANN fails").
    """

    label: ClassVar[str] = "MANN (LRUA)"
    references: ClassVar[tuple[str, ...]] = ("santoro2016",)
    test_hyperparameters: ClassVar[dict] = dict(controller_size=6, memory_slots=5, memory_width=3, read_heads=2)
    in_default_bench: ClassVar[bool] = True

    VARIANTS = {"add_vector": ("key", "separate"), "read_memory": ("written", "previous"),
                "least_used": ("shared", "per-head"), "key_strength": ("none", "learned")}

    def __init__(self, task: TaskSpec, controller_size: int = 200, memory_slots: int = 128,
                 memory_width: int = 40, read_heads: int = 4, usage_decay: float = 0.95,
                 controller: str = "lstm", image_encoder: str = "flatten", forget_bias: float = 0.0,
                 add_vector: str = "key", read_memory: str = "written", least_used: str = "shared",
                 key_strength: str = "none") -> None:
        super().__init__(task, image_encoder, controller, controller_size, read_heads * memory_width)
        variants = dict(add_vector=add_vector, read_memory=read_memory, least_used=least_used,
                        key_strength=key_strength)
        for name, value in variants.items():
            if value not in self.VARIANTS[name]:
                raise ValueError(f"{name}={value!r}: use one of {', '.join(self.VARIANTS[name])}")
        self.memory_slots, self.memory_width = memory_slots, memory_width
        self.read_heads, self.usage_decay = read_heads, usage_decay
        self.add_vector, self.read_memory, self.least_used = add_vector, read_memory, least_used
        self.key_strength = key_strength
        self.controller.add_forget_bias(forget_bias)
        # All heads' quantities in one projection: H·W keys, H gates[, H·W add vectors][, H strengths].
        add_size = read_heads * memory_width if add_vector == "separate" else 0
        strength_size = read_heads if key_strength == "learned" else 0
        self.interface = nn.Linear(controller_size, read_heads * (memory_width + 1) + add_size + strength_size)
        self.readout = nn.Linear(controller_size + read_heads * memory_width, task.output_size)

    def initial_state(self, batch_size: int, reference: torch.Tensor) -> State:
        b, n, w, h = batch_size, self.memory_slots, self.memory_width, self.read_heads
        zeros = reference.new_zeros
        least_used = zeros(b, n)
        least_used[:, :h] = 1.0  # any n = R slots are equally unused at the start
        if self.least_used == "per-head":
            least_used = lru.least_used_per_head(zeros(b, n), h)  # (B, R, N): head h on slot h
        return (zeros(b, self.controller_size),  # controller hidden (B, C)
                zeros(b, self.controller_size),  # controller cell (B, C)
                reference.new_full((b, n, w), MEMORY_INIT),  # memory M (B, N, W)
                zeros(b, h, n),  # read weights w^r (B, R, N)
                zeros(b, n),  # usage w^u (B, N)
                least_used,  # least-used weights w^lu (B, N), or (B, R, N) per head
                zeros(b, h * w))  # read vectors r (B, R·W)

    @staticmethod
    def read_weights(state: State) -> torch.Tensor:
        """The read weights w^r (B, R, N) held in a state that ``initial_state`` or ``step`` returned."""
        return state[3]  # the order of initial_state's tuple

    def access(self, interface: torch.Tensor, memory_state: State) -> tuple[State, torch.Tensor]:
        """One step's LRU write and read, from the (B, R·(W + 1)) interface vector:
        ((memory, read weights, usage, least-used weights), reads (B, R·W))."""
        memory, read_w, usage, least_used = memory_state
        b, h, w = interface.shape[0], self.read_heads, self.memory_width
        keys = torch.tanh(interface[:, : h * w]).view(b, h, w)  # (B, R, W)
        gates = interface[:, h * w : h * w + h]  # (B, R) write-gate logits α
        added = torch.tanh(interface[:, h * w + h : 2 * h * w + h]).view(b, h, w) \
            if self.add_vector == "separate" else keys
        strengths = F.softplus(interface[:, -h:]) if self.key_strength == "learned" \
            else torch.ones_like(gates)  # (B, R) β; Santoro: no key strength
        write_w = lru.lru_write_weights(read_w, least_used, gates)  # (B, R, N)
        previous = memory
        memory = lru.zero_least_used(memory, usage)
        memory = addressing.add_write(memory, write_w, added)
        read_from = memory if self.read_memory == "written" else previous
        read_w = addressing.content_weights(read_from, keys, strengths)
        reads = addressing.read(read_from, read_w).flatten(1)  # (B, R·W)
        usage = lru.update_usage(usage, read_w, write_w, self.usage_decay)
        mark = lru.least_used_per_head if self.least_used == "per-head" else lru.least_used_weights
        return (memory, read_w, usage, mark(usage, h)), reads

    def fused_access(self) -> FusedAccess | None:
        """The hand-derived access (``fused_steps.lru_forward``, ``lru_backward``): the paper's, with
        either add vector and either key strength; reads of M_{t−1} and per-head least-used slots
        run ``access`` under autograd (None)."""
        if (self.read_memory, self.least_used) != ("written", "shared"):
            return None
        return FusedAccess(lru_forward, lru_backward,
                           after=(self.usage_decay, self.add_vector == "separate", self.key_strength == "learned"),
                           backward_after=(self.usage_decay,), constant=(3,))  # the least-used marks


class MANNWithAddVector(MANN):
    """MANN whose writes add a tanh add vector of their own instead of the key (``add_vector=
    "separate"``, as the NTM and DNC write): not the paper's equation, but the one reading in the
    ablation (``benchmarks/mann_ablation.py``, README "Why MANN learns slowly") that learns
    several times faster at the paper's recipe. Kept beside ``mann`` under its own name, so that
    ``mann`` stays the paper's model and neither's entries mix with the other's."""

    label: ClassVar[str] = "MANN (LRUA, add vector)"
    in_default_bench: ClassVar[bool] = False

    __init__ = functools.partialmethod(MANN.__init__, add_vector="separate")


class MANNWithKeyStrength(MANN):
    """MANN with a separate add vector (as ``mann-add``) whose reads also learn a key strength
    (``key_strength="learned"``: softmax(β K(k, M)), β = softplus(β̂) per head, as the NTM's content
    addressing). Not the paper's equations; on Table 2's 15 classes it is the one reading that
    learned: 52% at the 2nd instance after 7,000 steps, where ``mann-add`` stayed below 10% at
    7,500 on ``omniglot-15way-strings@2`` and below 33% after 34,000 on version 1 (README, "Table 2:
    where in the episode MANN fails"). Kept under its own name, as ``mann-add`` is, so that its
    entries never mix with the paper's model's."""

    label: ClassVar[str] = "MANN (LRUA, add vector, key strength)"
    in_default_bench: ClassVar[bool] = False

    __init__ = functools.partialmethod(MANN.__init__, add_vector="separate", key_strength="learned")
