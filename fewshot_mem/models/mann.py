"""MANN: the memory-augmented neural network of Santoro et al. (2016),
"Meta-learning with memory-augmented neural networks", ICML, with least-recently-used
access (LRUA)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..memory import addressing, lru
from .fused_steps import LRUAccessStep
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
    """

    label: ClassVar[str] = "MANN (LRUA)"
    references: ClassVar[tuple[str, ...]] = ("santoro2016",)
    test_hyperparameters: ClassVar[dict] = dict(controller_size=6, memory_slots=5, memory_width=3, read_heads=2)
    in_default_bench: ClassVar[bool] = True

    def __init__(self, task: TaskSpec, controller_size: int = 200, memory_slots: int = 128,
                 memory_width: int = 40, read_heads: int = 4, usage_decay: float = 0.95,
                 controller: str = "lstm", image_encoder: str = "flatten") -> None:
        super().__init__(task, image_encoder, controller, controller_size, read_heads * memory_width)
        self.memory_slots, self.memory_width = memory_slots, memory_width
        self.read_heads, self.usage_decay = read_heads, usage_decay
        # All heads' keys and gates in one projection: (H·W keys, H gates).
        self.interface = nn.Linear(controller_size, read_heads * (memory_width + 1))
        self.readout = nn.Linear(controller_size + read_heads * memory_width, task.output_size)

    def initial_state(self, batch_size: int, reference: torch.Tensor) -> State:
        b, n, w, h = batch_size, self.memory_slots, self.memory_width, self.read_heads
        zeros = reference.new_zeros
        least_used = zeros(b, n)
        least_used[:, :h] = 1.0  # any n = R slots are equally unused at the start
        return (zeros(b, self.controller_size),  # controller hidden (B, C)
                zeros(b, self.controller_size),  # controller cell (B, C)
                reference.new_full((b, n, w), MEMORY_INIT),  # memory M (B, N, W)
                zeros(b, h, n),  # read weights w^r (B, R, N)
                zeros(b, n),  # usage w^u (B, N)
                least_used,  # least-used weights w^lu (B, N)
                zeros(b, h * w))  # read vectors r (B, R·W)

    def access(self, interface: torch.Tensor, memory_state: State) -> tuple[State, torch.Tensor]:
        """One step's LRU write and read, from the (B, R·(W + 1)) interface vector:
        ((memory, read weights, usage, least-used weights), reads (B, R·W))."""
        memory, read_w, usage, least_used = memory_state
        b, h, w = interface.shape[0], self.read_heads, self.memory_width
        keys = torch.tanh(interface[:, : h * w]).view(b, h, w)  # (B, R, W)
        gates = interface[:, h * w :]  # (B, R) write-gate logits α
        write_w = lru.lru_write_weights(read_w, least_used, gates)  # (B, R, N)
        memory = lru.zero_least_used(memory, usage)
        memory = addressing.add_write(memory, write_w, keys)
        read_w = addressing.content_weights(memory, keys, torch.ones_like(gates))  # Santoro: no key strength
        reads = addressing.read(memory, read_w).flatten(1)  # (B, R·W)
        usage = lru.update_usage(usage, read_w, write_w, self.usage_decay)
        return (memory, read_w, usage, lru.least_used_weights(usage, h)), reads

    def fast_access(self, interface: torch.Tensor, memory_state: State) -> tuple[State, torch.Tensor]:
        *memory_state, reads = LRUAccessStep.apply(interface, *memory_state, self.usage_decay, self.compiled_steps)
        return tuple(memory_state), reads
