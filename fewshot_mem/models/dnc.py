"""The Differentiable Neural Computer of Graves et al. (2016), "Hybrid computing using a
neural network with dynamic external memory", Nature 538: one write head with dynamic
allocation, R read heads with content and temporal-link (forward/backward) modes."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..memory import addressing, dnc as dnc_memory
from .fused_dnc import dnc_backward, dnc_forward, interface_parameters
from .fused_run import FusedAccess
from .learner import State, TaskSpec
from .memory_learner import MEMORY_INIT, MemoryLearner


class DNC(MemoryLearner):
    """An LSTM controller emitting the DNC interface vector at each step.

    Interface per step (paper, Methods): read keys k^r (R×W) and strengths β^r
    (R), write key k^w (W) and strength β^w, erase e (W), write vector v (W),
    free gates f (R), allocation gate g^a, write gate g^w and read modes π
    (R×3: backward, content, forward). Writes use M_{t−1} and the usage-based
    allocation; reads use M_t and the temporal link matrix L_t.

    Args:
        task: ways, label encoding and image shape.
        controller_size: LSTM units (256, the paper's bAbI controller).
        memory_slots: N (128).
        memory_width: W (40, Santoro et al.'s width, so the memory models compare at one size).
        read_heads: R (4).
        image_encoder: how images become features ("flatten": raw pixels; "conv4": Conv-4 features).
    """

    label: ClassVar[str] = "DNC"
    references: ClassVar[tuple[str, ...]] = ("graves2016",)
    test_hyperparameters: ClassVar[dict] = dict(controller_size=6, memory_slots=5, memory_width=3, read_heads=2)
    in_default_bench: ClassVar[bool] = True

    def __init__(self, task: TaskSpec, controller_size: int = 256, memory_slots: int = 128,
                 memory_width: int = 40, read_heads: int = 4, image_encoder: str = "flatten") -> None:
        super().__init__(task, image_encoder, "lstm", controller_size, read_heads * memory_width)
        self.memory_slots, self.memory_width, self.read_heads = memory_slots, memory_width, read_heads
        w, r = memory_width, read_heads
        self.interface_sizes = (r * w, r, w, 1, w, w, r, 1, 1, 3 * r)
        self.interface = nn.Linear(controller_size, sum(self.interface_sizes))
        self.readout = nn.Linear(controller_size + r * w, task.output_size)
        # The links' mask, handed to the fused access step (see memory.dnc.update_link); not saved.
        self.register_buffer("off_diagonal", dnc_memory.off_diagonal_mask(memory_slots, torch.empty(0)),
                             persistent=False)  # (N, N)

    def initial_state(self, batch_size: int, reference: torch.Tensor) -> State:
        b, n, r, w = batch_size, self.memory_slots, self.read_heads, self.memory_width
        zeros = reference.new_zeros
        return (zeros(b, self.controller_size),  # controller hidden (B, C)
                zeros(b, self.controller_size),  # controller cell (B, C)
                reference.new_full((b, n, w), MEMORY_INIT),  # memory M (B, N, W)
                zeros(b, r, n),  # read weights (B, R, N)
                zeros(b, n),  # write weights (B, N)
                zeros(b, n),  # usage u (B, N)
                zeros(b, n),  # precedence p (B, N)
                zeros(b, n, n),  # temporal links L (B, N, N)
                zeros(b, r * w))  # read vectors (B, R·W)

    def access(self, interface: torch.Tensor, memory_state: State) -> tuple[State, torch.Tensor]:
        """The write (allocation or content), then the reads from M_t (content or temporal links):
        ((memory, read weights, write weights, usage, precedence, links), reads (B, R·W))."""
        memory, read_w, write_w, usage, precedence, link = memory_state
        (read_keys, read_strengths, write_key, write_strength, erase, write_vector,
         free_gates, allocation_gate, write_gate, read_modes) = interface_parameters(interface, self.interface_sizes,
                                                                       self.read_heads, self.memory_width)

        retention = dnc_memory.retention(free_gates, read_w)  # (B, N)
        usage = dnc_memory.update_usage(usage, write_w, retention)  # (B, N)
        allocation = dnc_memory.allocation_weights(usage)  # (B, N)
        write_content = addressing.content_weights(memory, write_key, write_strength)[:, 0]  # (B, N)
        write_w = dnc_memory.write_weights(write_content, allocation, allocation_gate, write_gate)  # (B, N)
        memory = addressing.erase_and_add(memory, write_w[:, None], erase, write_vector)

        link = dnc_memory.update_link(link, precedence, write_w)  # (B, N, N)
        precedence = dnc_memory.update_precedence(precedence, write_w)  # (B, N)
        forward, backward = dnc_memory.directional_weights(link, read_w)  # (B, R, N) each
        read_content = addressing.content_weights(memory, read_keys, read_strengths)  # (B, R, N)
        read_w = dnc_memory.read_weights(read_content, forward, backward, read_modes)  # (B, R, N)
        reads = addressing.read(memory, read_w).flatten(1)  # (B, R·W)
        return (memory, read_w, write_w, usage, precedence, link), reads

    def fused_access(self) -> FusedAccess:
        """``access`` with a hand-derived backward (``fused_dnc.dnc_forward``, ``dnc_backward``)."""
        return FusedAccess(dnc_forward, dnc_backward, before=(self.interface_sizes,),
                           after=(self.off_diagonal,), backward_after=(self.off_diagonal,))
