"""The shape every memory model shares: encoder -> controller -> interface -> memory access ->
readout, and a fast ``run`` through whole sequences for all of them."""

from __future__ import annotations

import torch
from torch import nn

from .controller import Controller, probe_weight
from .encoders import build_encoder
from .fused_run import FusedAccess, fused_run
from .fused_steps import compiled
from .learner import SequenceLearner, State, TaskSpec

MEMORY_INIT = 1e-6  # every memory cell at t = 0: a non-zero memory keeps cosine similarities defined


class MemoryLearner(SequenceLearner):
    """A controller reading [x_t, y_{t-1}, r_{t-1}], an interface vector from its hidden state,
    an external memory accessed with it, and a readout of [hidden, r_t].

    Subclasses build ``interface`` (an nn.Linear from the controller) and ``readout``, and
    define ``access``, one step of memory access. The state is always
    (hidden, cell, *memory state, reads (B, R·W)).
    """

    def __init__(self, task: TaskSpec, image_encoder: str, controller: str, controller_size: int,
                 read_size: int) -> None:
        super().__init__(task)
        self.controller_size = controller_size
        self.encoder = build_encoder(image_encoder, task.image_shape)
        self.controller = Controller(controller, self.encoder.output_size + task.code_size + read_size,
                                     controller_size)
        self.interface: nn.Linear
        self.readout: nn.Linear
        self.compiled_steps = False  # see compile_steps

    def compile_steps(self, enabled: bool = True) -> "MemoryLearner":
        """Runs ``run``'s time steps compiled by torch.compile (with a hand-derived access, each
        step's controller and access whole, forward and backward; else the controller cell and the
        access): fewer, fused operations per time step, after a compile of
        tens of seconds per process (cached on disk by inductor). The function stays the same."""
        self.compiled_steps = enabled
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def access(self, interface: torch.Tensor, memory_state: State) -> tuple[State, torch.Tensor]:
        """One step of memory access from the (B, I) interface vector: the next memory state
        (the state's slots between cell and reads) and the reads (B, R·W)."""
        raise NotImplementedError

    def fused_access(self) -> FusedAccess | None:
        """``access`` as plain forward and backward functions with a hand-derived backward, for
        ``run``'s time loop as one autograd node (``fused_run``); None where there are none, and
        ``run`` records ``access`` step by step (compiled, forward and backward, after ``compile_steps``)."""
        return None

    def step(self, features: torch.Tensor, previous_code: torch.Tensor, state: State
             ) -> tuple[torch.Tensor, State]:
        hidden, cell, *memory_state, reads = state
        hidden, cell = self.controller(torch.cat([features, previous_code, reads], dim=-1), (hidden, cell))
        memory_state, reads = self.access(self.interface(hidden), tuple(memory_state))
        output = self.readout(torch.cat([hidden, reads], dim=-1))
        return output, (hidden, cell, *memory_state, reads)

    def run(self, features: torch.Tensor, previous_codes: torch.Tensor, state: State
            ) -> tuple[torch.Tensor, State]:
        """``SequenceLearner.run`` (the same function and gradients as T calls of ``step``), with
        the work that does not feed the recurrence taken out of the time loop: the controller's
        products with x_t and y_{t-1} and the readout run once over all T steps, and the recurrent
        weights' gradients are one product over all steps. Where the access has a hand-derived
        backward (``fused_access``) the whole loop is one autograd node (``fused_run``)."""
        hidden, cell, *memory_state, reads = state
        b, t = features.shape[:2]
        outside, recurrent_weight, bias = self.controller.affine(features.shape[-1] + previous_codes.shape[-1])
        # Gate pre-activations of x_t and y_{t-1}, for all steps at once: (T, B, G).
        controller_base = nn.functional.linear(torch.cat([features, previous_codes], dim=-1).transpose(0, 1),
                                               outside, bias)
        interface_base = self.interface.bias.expand(t, b, -1)
        lstm, access = self.controller.kind == "lstm", self.fused_access()
        if access is not None:
            hiddens, read_log, hidden, cell, reads, *memory_state = fused_run(
                access, lstm, self.compiled_steps, controller_base, interface_base, recurrent_weight,
                self.interface.weight, hidden, cell, reads, tuple(memory_state))
        else:
            hiddens, read_log, hidden, cell, reads, *memory_state = self._recorded_loop(
                lstm, controller_base, interface_base, recurrent_weight, hidden, cell, reads, tuple(memory_state))
        outputs = self.readout(torch.cat([hiddens.transpose(0, 1), read_log.transpose(0, 1)], dim=-1))
        return outputs, (hidden, cell, *memory_state, reads)

    def _recorded_loop(self, lstm: bool, controller_base: torch.Tensor, interface_base: torch.Tensor,
                       recurrent_weight: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor, reads: torch.Tensor,
                       memory_state: State):
        """``fused_run``'s loop recorded by autograd step by step, for an access without a
        hand-derived backward: the weights' gradients still come as one product each
        (``controller.probe_weight``). Returns (hiddens (T, B, C), reads (T, B, R·W), hidden, cell,
        reads, *memory state)."""
        recurrent_weight, controller_base, controller_log = probe_weight(recurrent_weight, controller_base)
        interface_weight, interface_base, interface_log = probe_weight(self.interface.weight, interface_base)
        access = compiled(type(self).access) if self.compiled_steps else type(self).access
        hiddens, read_log = [], []
        for controller_in, interface_in in zip(controller_base.unbind(0), interface_base.unbind(0)):
            recurrent_in = torch.cat([reads, hidden], dim=-1) if lstm else reads  # (B, R·W [+ C])
            if controller_log is not None:
                controller_log.append(recurrent_in.detach())
            hidden, cell = self.controller.activate(torch.addmm(controller_in, recurrent_in, recurrent_weight.t()),
                                                    cell, self.compiled_steps)
            if interface_log is not None:
                interface_log.append(hidden.detach())
            memory_state, reads = access(self, torch.addmm(interface_in, hidden, interface_weight.t()), memory_state)
            hiddens.append(hidden)
            read_log.append(reads)
        return torch.stack(hiddens), torch.stack(read_log), hidden, cell, reads, *memory_state
