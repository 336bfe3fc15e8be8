"""The controller of the memory models: an LSTM cell or a feedforward layer, one interface;
and the pieces of a fast time loop over it (``MemoryLearner.run``)."""

from __future__ import annotations

import torch
from torch import nn

from .fused_steps import LSTMCellStep

CONTROLLERS = ("lstm", "feedforward")


class Controller(nn.Module):
    """Maps (inputs (B, I), (hidden, cell) (B, C) each) to the next (hidden, cell).

    A feedforward controller (ReLU layer) has no memory of its own: its cell is
    passed through unchanged, so every model keeps one state layout.
    """

    def __init__(self, kind: str, input_size: int, size: int) -> None:
        super().__init__()
        if kind not in CONTROLLERS:
            raise ValueError(f"unknown controller {kind!r}: use one of {', '.join(CONTROLLERS)}")
        self.kind, self.size = kind, size
        self.core = nn.LSTMCell(input_size, size) if kind == "lstm" else nn.Linear(input_size, size)

    def add_forget_bias(self, forget_bias: float) -> None:
        """Adds ``forget_bias`` to an LSTM's initial forget-gate bias (TensorFlow's LSTM cells add 1,
        as a constant; here it shifts the learned bias's start, so the function at t = 0 is the same)."""
        if forget_bias and self.kind == "lstm":
            with torch.no_grad():
                self.core.bias_ih[self.size : 2 * self.size] += forget_bias  # gates: input, forget, cell, output

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "lstm":
            return self.core(inputs, state)
        return torch.relu(self.core(inputs)), state[1]

    def affine(self, outside_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pre-activation on [outside inputs, recurrent inputs (and an LSTM's hidden state)] as
        (weight on the first ``outside_size`` inputs (G, F), weight on the rest [and the hidden
        state] (G, K [+ C]), bias (G,)); G = 4C gates for an LSTM, C units for a feedforward layer.
        Views and sums of the parameters, so gradients reach them through autograd."""
        core = self.core
        if self.kind == "lstm":
            recurrent = torch.cat([core.weight_ih[:, outside_size:], core.weight_hh], dim=1)
            return core.weight_ih[:, :outside_size], recurrent, core.bias_ih + core.bias_hh
        return core.weight[:, :outside_size], core.weight[:, outside_size:], core.bias

    def activate(self, pre: torch.Tensor, cell: torch.Tensor, compiled: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The controller after its products: (B, G) pre-activations and (B, C) cell -> the
        next (hidden, cell), as ``forward`` computes them (an LSTM's with a hand-derived backward,
        compiled or not: see ``fused_steps``)."""
        return LSTMCellStep.apply(pre, cell, compiled) if self.kind == "lstm" else (torch.relu(pre), cell)


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


def probe_weight(weight: torch.Tensor, base: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
    """For a time loop computing pre_t = base_t + input_t @ weight^T, with weight (G, K) and
    base (T, B, G): the weight to use in the loop, the base to use, and the list the loop must
    append each input_t (detached) to, or None. While gradients are recorded the loop's weight
    is detached and its gradient comes from the probe; otherwise nothing changes."""
    if not (torch.is_grad_enabled() and weight.requires_grad):
        return weight, base, None
    log: list[torch.Tensor] = []
    return weight.detach(), base + _WeightGradientProbe.apply(weight, base.shape, log), log
