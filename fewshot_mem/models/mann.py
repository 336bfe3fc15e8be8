"""MANN: the memory-augmented neural network of Santoro et al. (2016),
"Meta-learning with memory-augmented neural networks", ICML, with least-recently-used
access (LRUA)."""

from __future__ import annotations

import torch
from torch import nn

from ..memory import addressing, lru
from .controller import Controller
from .encoders import build_encoder
from .learner import SequenceLearner, State, TaskSpec

_MEMORY_INIT = 1e-6  # a non-zero memory keeps cosine similarities defined at t = 1


class MANN(SequenceLearner):
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

    def __init__(self, task: TaskSpec, controller_size: int = 200, memory_slots: int = 128,
                 memory_width: int = 40, read_heads: int = 4, usage_decay: float = 0.95,
                 controller: str = "lstm", image_encoder: str = "flatten") -> None:
        super().__init__(task)
        self.memory_slots, self.memory_width = memory_slots, memory_width
        self.read_heads, self.usage_decay, self.controller_size = read_heads, usage_decay, controller_size
        self.encoder = build_encoder(image_encoder, task.image_shape)
        inputs = self.encoder.output_size + task.code_size + read_heads * memory_width
        self.controller = Controller(controller, inputs, controller_size)
        # All heads' keys and gates in one projection: (H·W keys, H gates).
        self.interface = nn.Linear(controller_size, read_heads * (memory_width + 1))
        self.readout = nn.Linear(controller_size + read_heads * memory_width, task.output_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def initial_state(self, batch_size: int, reference: torch.Tensor) -> State:
        b, n, w, h = batch_size, self.memory_slots, self.memory_width, self.read_heads
        zeros = reference.new_zeros
        least_used = zeros(b, n)
        least_used[:, :h] = 1.0  # any n = R slots are equally unused at the start
        return (zeros(b, self.controller_size),  # controller hidden (B, C)
                zeros(b, self.controller_size),  # controller cell (B, C)
                reference.new_full((b, n, w), _MEMORY_INIT),  # memory M (B, N, W)
                zeros(b, h, n),  # read weights w^r (B, R, N)
                zeros(b, n),  # usage w^u (B, N)
                least_used,  # least-used weights w^lu (B, N)
                zeros(b, h * w))  # read vectors r (B, R·W)

    def step(self, features: torch.Tensor, previous_code: torch.Tensor, state: State
             ) -> tuple[torch.Tensor, State]:
        hidden, cell, memory, read_w, usage, least_used, reads = state
        inputs = torch.cat([features, previous_code, reads], dim=-1)
        hidden, cell = self.controller(inputs, (hidden, cell))
        memory, read_w, usage, least_used, reads = self._access(self.interface(hidden), memory, read_w, usage,
                                                                least_used)
        output = self.readout(torch.cat([hidden, reads], dim=-1))
        return output, (hidden, cell, memory, read_w, usage, least_used, reads)

    def _access(self, interface: torch.Tensor, memory: torch.Tensor, read_w: torch.Tensor, usage: torch.Tensor,
                least_used: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step's LRU write and read, from the (B, R·(W + 1)) interface vector:
        (memory, read weights, usage, least-used weights, reads (B, R·W)), as in the state."""
        b, h, w = interface.shape[0], self.read_heads, self.memory_width
        keys = torch.tanh(interface[:, : h * w]).view(b, h, w)  # (B, R, W)
        gates = interface[:, h * w :]  # (B, R) write-gate logits α
        write_w = lru.lru_write_weights(read_w, least_used, gates)  # (B, R, N)
        memory = lru.zero_least_used(memory, usage)
        memory = addressing.add_write(memory, write_w, keys)
        read_w = addressing.content_weights(memory, keys, torch.ones_like(gates))  # Santoro: no key strength
        reads = addressing.read(memory, read_w).flatten(1)  # (B, R·W)
        usage = lru.update_usage(usage, read_w, write_w, self.usage_decay)
        return memory, read_w, usage, lru.least_used_weights(usage, h), reads

    def run(self, features: torch.Tensor, previous_codes: torch.Tensor, state: State
            ) -> tuple[torch.Tensor, State]:
        """``SequenceLearner.run`` (the same function and gradients as T calls of ``step``), with
        the work that does not feed the recurrence taken out of the time loop: the controller's
        input-to-gate products and the readout run once over all T steps, and the recurrent
        weights' gradients are one product over all steps (see ``_WeightGradientProbe``)."""
        hidden, cell, memory, read_w, usage, least_used, reads = state
        b, t = features.shape[:2]
        outside, recurrent_weight, bias = _controller_affine(self.controller, features.shape[-1]
                                                             + previous_codes.shape[-1])
        # Gate pre-activations of x_t and y_{t-1}, for all steps at once: (T, B, G).
        controller_base = nn.functional.linear(torch.cat([features, previous_codes], dim=-1).transpose(0, 1),
                                               outside, bias)
        recurrent_weight, controller_base, controller_log = _probe_weight(recurrent_weight, controller_base)
        interface_weight, interface_base, interface_log = _probe_weight(self.interface.weight,
                                                                        self.interface.bias.expand(t, b, -1))
        lstm = self.controller.kind == "lstm"
        hiddens, read_log = [], []
        for controller_in, interface_in in zip(controller_base.unbind(0), interface_base.unbind(0)):
            recurrent_in = torch.cat([reads, hidden], dim=-1) if lstm else reads  # (B, R·W [+ C])
            if controller_log is not None:
                controller_log.append(recurrent_in.detach())
            pre = torch.addmm(controller_in, recurrent_in, recurrent_weight.t())  # (B, G)
            hidden, cell = _lstm_cell(pre, cell) if lstm else (torch.relu(pre), cell)
            if interface_log is not None:
                interface_log.append(hidden.detach())
            interface = torch.addmm(interface_in, hidden, interface_weight.t())  # (B, R·(W + 1))
            memory, read_w, usage, least_used, reads = self._access(interface, memory, read_w, usage, least_used)
            hiddens.append(hidden)
            read_log.append(reads)
        outputs = self.readout(torch.cat([torch.stack(hiddens, dim=1), torch.stack(read_log, dim=1)], dim=-1))
        return outputs, (hidden, cell, memory, read_w, usage, least_used, reads)


def _controller_affine(controller: Controller, outside_size: int
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The controller's pre-activation on [x_t, y_{t-1}, r_{t-1}] (and an LSTM's hidden state) as
    (weight on the inputs from outside the recurrence (G, F + D), weight on [r_{t-1}, hidden]
    (G, R·W [+ C]), bias (G,)); G = 4C gates for an LSTM, C units for a feedforward layer.
    Views and sums of the parameters, so gradients reach them through autograd."""
    core = controller.core
    if controller.kind == "lstm":
        recurrent = torch.cat([core.weight_ih[:, outside_size:], core.weight_hh], dim=1)
        return core.weight_ih[:, :outside_size], recurrent, core.bias_ih + core.bias_hh
    return core.weight[:, :outside_size], core.weight[:, outside_size:], core.bias


def _lstm_cell(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.LSTMCell after its products: (B, 4C) pre-activations in torch's order (input, forget,
    cell, output) and (B, C) cell -> the next (hidden, cell)."""
    i, f, g, o = gates.chunk(4, dim=-1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), cell


class _WeightGradientProbe(torch.autograd.Function):
    """Zeros (T, B, G), added to the pre-activations of a weight (G, K) that the time loop uses
    detached; their gradient is dL/d(pre-activation) at every step, so the weight's gradient is
    one (G, T·B) x (T·B, K) product with the loop's inputs, which the loop appends to ``log``
    ((B, K) a step) before backward runs. Autograd would instead compute and accumulate a small
    product per step, which costs more than the step's own arithmetic at these sizes."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, shape: torch.Size, log: list[torch.Tensor]) -> torch.Tensor:
        ctx.log = log
        return weight.new_zeros(shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        inputs = torch.stack(ctx.log)  # (T, B, K)
        if inputs.shape[:2] != grad.shape[:2]:
            raise RuntimeError(f"the loop logged {inputs.shape[0]} steps of {grad.shape[0]}")
        return grad.flatten(0, 1).t().mm(inputs.flatten(0, 1)), None, None


def _probe_weight(weight: torch.Tensor, base: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
    """For a time loop computing pre_t = base_t + input_t @ weight^T, with weight (G, K) and
    base (T, B, G): the weight to use in the loop, the base to use, and the list the loop must
    append each input_t (detached) to, or None. While gradients are recorded the loop's weight
    is detached and its gradient comes from the probe; otherwise nothing changes."""
    if not (torch.is_grad_enabled() and weight.requires_grad):
        return weight, base, None
    log: list[torch.Tensor] = []
    return weight.detach(), base + _WeightGradientProbe.apply(weight, base.shape, log), log
