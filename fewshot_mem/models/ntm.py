"""The Neural Turing Machine of Graves, Wayne & Danihelka (2014), "Neural Turing Machines",
arXiv:1410.5401: content and location addressing, erase-and-add writes."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ..memory import addressing
from ..recipes import Recipe
from .fused_run import FusedAccess
from .fused_steps import ntm_backward, ntm_forward, ntm_interface_parameters
from .learner import State, TaskSpec
from .memory_learner import MEMORY_INIT, MemoryLearner

if TYPE_CHECKING:
    from ..suites import Suite


class NTM(MemoryLearner):
    """A controller with R read heads and one write head over an N×W memory.

    Every head (reads and the write together, in one batched call) addresses
    memory by content (key k, strength β), interpolates with its previous
    weights (gate g), shifts them by a circular convolution (distribution s
    over −1, 0, +1) and sharpens them (γ ≥ 1). Reads see M_{t−1}; the write
    head then erases (e) and adds (a). The output reads the controller state
    and the read vectors.

    With ``memory_slots=128, memory_width=40, read_heads=4`` and an LSTM
    controller of 200 it is the "MANN with NTM addressing" of Santoro et al.
    (2016), Table 2.

    Args (defaults are the paper's copy-task settings):
        task: ways, label encoding and image shape.
        controller_size: controller units (100).
        memory_slots: N (128).
        memory_width: W (20).
        read_heads: R (1).
        shift_range: S, the shift offsets −S//2..S//2 (3).
        controller: "lstm" or "feedforward".
        image_encoder: how images become features ("flatten": raw pixels; "conv4": Conv-4 features).
    """

    label: ClassVar[str] = "MANN (NTM addressing)"
    references: ClassVar[tuple[str, ...]] = ("graves2014",)
    test_hyperparameters: ClassVar[dict] = dict(controller_size=6, memory_slots=5, memory_width=3, read_heads=2)
    in_default_bench: ClassVar[bool] = True

    @classmethod
    def recipe(cls, suite: Suite, budget: str) -> Recipe:
        """The sequence models' schedule; on Omniglot at Santoro's size, their "MANN with NTM
        addressing" row (200 LSTM units, 128 x 40 memory, 4 heads)."""
        chosen = super().recipe(suite, budget)
        if suite.dataset != "omniglot":
            return chosen
        return replace(chosen, hyperparameters=dict(controller_size=200, memory_slots=128, memory_width=40,
                                                     read_heads=4))

    def __init__(self, task: TaskSpec, controller_size: int = 100, memory_slots: int = 128,
                 memory_width: int = 20, read_heads: int = 1, shift_range: int = 3,
                 controller: str = "lstm", image_encoder: str = "flatten") -> None:
        super().__init__(task, image_encoder, controller, controller_size, read_heads * memory_width)
        self.memory_slots, self.memory_width, self.read_heads = memory_slots, memory_width, read_heads
        self.shift_range = shift_range
        heads = read_heads + 1
        # Per head: key W, β, g, γ and S shift logits; the write head adds erase W and add W.
        self.head_size = memory_width + 3 + shift_range
        self.interface = nn.Linear(controller_size, heads * self.head_size + 2 * memory_width)
        self.readout = nn.Linear(controller_size + read_heads * memory_width, task.output_size)

    def initial_state(self, batch_size: int, reference: torch.Tensor) -> State:
        b, n, heads = batch_size, self.memory_slots, self.read_heads + 1
        zeros = reference.new_zeros
        weights = zeros(b, heads, n)
        weights[:, :, 0] = 1.0  # every head starts on slot 0, so shifts have somewhere to move from
        return (zeros(b, self.controller_size),  # controller hidden (B, C)
                zeros(b, self.controller_size),  # controller cell (B, C)
                reference.new_full((b, n, self.memory_width), MEMORY_INIT),  # memory (B, N, W)
                weights,  # head weights, reads first then the write (B, R+1, N)
                zeros(b, self.read_heads * self.memory_width))  # read vectors (B, R·W)

    def access(self, interface: torch.Tensor, memory_state: State) -> tuple[State, torch.Tensor]:
        """Every head addresses, the reads see M_{t−1}, then the write head erases and adds:
        ((memory, head weights), reads (B, R·W))."""
        memory, weights = memory_state
        keys, strength, gate, shift, sharpness, erase, add = ntm_interface_parameters(interface, self.read_heads + 1,
                                                                                     self.memory_width)
        weights = addressing.ntm_address(memory, keys, strength, gate, shift, sharpness, weights)
        read_w, write_w = weights[:, :-1], weights[:, -1:]  # (B, R, N), (B, 1, N)
        reads = addressing.read(memory, read_w).flatten(1)  # (B, R·W), from M_{t−1}
        memory = addressing.erase_and_add(memory, write_w, erase[:, None], add[:, None])
        return (memory, weights), reads

    def fused_access(self) -> FusedAccess:
        """``access`` with a hand-derived backward (``fused_steps.ntm_forward``, ``ntm_backward``)."""
        return FusedAccess(ntm_forward, ntm_backward)
