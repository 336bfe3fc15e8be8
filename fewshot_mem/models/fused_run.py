"""A memory model's whole time loop as one autograd node, with the backward through time written
out (``MemoryLearner.run`` takes it where the model's access has a hand-derived backward).

Recorded step by step, a 50-step sequence is hundreds of autograd nodes (the controller's product
and cell, the interface product, the access step, the concatenations, the gradient sums where a
state feeds two places), and at Santoro's size (16 episodes, 128 x 40 memory) running them costs
more than their arithmetic. Here the forward runs the same operations in the same order (so the
outputs are the step loop's), keeping each step's saved tensors, and the backward walks the steps
in reverse calling each piece's hand-derived backward (``fused_steps``, ``fused_dnc``); the weights'
gradients are one product over all steps each. ``fast_path_check`` compares outputs, final state
and every gradient with the step loop in float64.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Callable

import torch

from . import fused_steps
from .fused_steps import lstm_backward, lstm_forward

State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class FusedAccess:
    """A model's access step as two plain functions of tensors (``fused_steps``, ``fused_dnc``).

    The forward body is called as ``forward_body(interface (B, I), *before, *memory state, *after)``
    and returns ((*next memory state, reads (B, R·W)), saved tensors); the backward body as
    ``backward_body(*saved, *gradients of the next state but its constant entries, gradient of the
    reads, *backward_after)`` and returns (dL/d interface, *dL/d previous state).
    before: constants of the model (hashable: they are fixed in a compiled step);
    after, backward_after: the model's further arguments (tensors such as masks, or settings);
    constant: positions in the memory state that carry no gradient (MANN's least-used marks).
    """

    forward_body: Callable
    backward_body: Callable
    before: tuple = ()
    after: tuple = ()
    backward_after: tuple = ()
    constant: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Loop:
    """What a time step needs besides tensors (hashable: one compiled step per loop and process)."""

    forward_body: Callable
    backward_body: Callable
    before: tuple
    constant: tuple[int, ...]
    lstm: bool
    compiled: bool

    @classmethod
    def of(cls, access: FusedAccess, lstm: bool, compiled: bool) -> "_Loop":
        return cls(access.forward_body, access.backward_body, access.before, access.constant, lstm, compiled)


def _controller_forward(lstm: bool, pre: torch.Tensor, cell: torch.Tensor):
    """(B, G) pre-activations, (B, C) cell -> ((hidden, cell), saved): an LSTM cell or a ReLU layer."""
    if lstm:
        return lstm_forward(pre, cell)
    hidden = torch.relu(pre)
    return (hidden, cell), (hidden,)


def _controller_backward(lstm: bool, saved: tuple, grad_hidden: torch.Tensor, grad_cell: torch.Tensor):
    """-> (dL/d pre-activations, dL/d previous cell)."""
    if lstm:
        return lstm_backward(*saved, grad_hidden, grad_cell)
    return grad_hidden * (saved[0] > 0), grad_cell


def _forward_step(loop: _Loop, controller_in: torch.Tensor, interface_in: torch.Tensor,
                  recurrent_weight: torch.Tensor, interface_weight: torch.Tensor, hidden: torch.Tensor,
                  cell: torch.Tensor, reads: torch.Tensor, state: State, after: tuple):
    """One time step: pre_t = base_t + [r_{t−1}, h_{t−1}] W_rᵀ (an LSTM; a feedforward layer reads
    r_{t−1} only), the controller, the interface base_t + h_t W_iᵀ, the access. Returns (hidden,
    cell, reads, next memory state, what the step's backward needs)."""
    recurrent_in = torch.cat([reads, hidden], dim=-1) if loop.lstm else reads  # (B, R·W [+ C])
    (hidden, cell), controller_saved = _controller_forward(
        loop.lstm, torch.addmm(controller_in, recurrent_in, recurrent_weight.t()), cell)
    interface = torch.addmm(interface_in, hidden, interface_weight.t())
    (*state, reads), access_saved = loop.forward_body(interface, *loop.before, *state, *after)
    return hidden, cell, reads, tuple(state), (recurrent_in, controller_saved, access_saved)


def _backward_step(loop: _Loop, saved: tuple, grad_state: State, grad_reads: torch.Tensor,
                   grad_reads_out: torch.Tensor, grad_hidden: torch.Tensor, grad_hidden_out: torch.Tensor,
                   grad_cell: torch.Tensor, recurrent_weight: torch.Tensor, interface_weight: torch.Tensor,
                   backward_after: tuple):
    """One time step backward: from the gradients reaching its state, reads and hidden from the
    next step (``grad_state``, ``grad_reads``, ``grad_hidden``, ``grad_cell``) and from the
    outputs read at this step (``grad_reads_out``, ``grad_hidden_out``), returns (dL/d interface,
    dL/d pre-activations, and dL/d the previous memory state, reads, hidden and cell)."""
    _, controller_saved, access_saved = saved
    grads = [g for i, g in enumerate(grad_state) if i not in loop.constant]
    grad_interface, *grad_state = loop.backward_body(*access_saved, *grads, grad_reads + grad_reads_out,
                                                     *backward_after)
    grad_hidden = grad_hidden + grad_hidden_out + grad_interface @ interface_weight
    grad_pre, grad_cell = _controller_backward(loop.lstm, controller_saved, grad_hidden, grad_cell)
    grad_recurrent_in = grad_pre @ recurrent_weight  # dL/d[r_{t−1}, h_{t−1}]
    read_size = grad_reads.shape[-1]
    grad_hidden = grad_recurrent_in[:, read_size:] if loop.lstm else torch.zeros_like(grad_hidden)
    return grad_interface, grad_pre, tuple(grad_state), grad_recurrent_in[:, :read_size], grad_hidden, grad_cell


def _with_own_code(function: Callable, name: str) -> Callable:
    """``function`` with a code object of its own. torch.compile keeps its compiled versions on
    the code object, and closures made by one ``def`` share theirs: every loop's time step would
    then join one list of compiled versions, each call checking the guards of those before its
    own (in one process the second model trained compiled ran a third slower: README Speed)."""
    code = function.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(code, function.__globals__, name, function.__defaults__, function.__closure__)


@functools.cache
def _plain_steps(loop: _Loop) -> tuple[Callable, Callable]:
    """The loop's forward and backward time steps as functions of tensors alone, made once per
    loop and process (so that each is compiled once), each with a code object of its own."""
    def forward(*arguments):
        return _forward_step(loop, *arguments)

    def backward(*arguments):
        return _backward_step(loop, *arguments)

    # Named after the access (e.g. lru_forward_step) so that profiles and compile logs say whose step it is.
    return (_with_own_code(forward, f"{loop.forward_body.__name__}_step"),
            _with_own_code(backward, f"{loop.backward_body.__name__}_step"))


def _steps(loop: _Loop) -> tuple[Callable, Callable]:
    """The loop's forward and backward time steps, each compiled whole (one call a step) if the
    loop is compiled (``fused_steps.compiled``: once per function and process)."""
    forward, backward = _plain_steps(loop)
    if not loop.compiled:
        return forward, backward
    return fused_steps.compiled(forward), fused_steps.compiled(backward)


def forward_loop(loop: _Loop, controller_base: torch.Tensor, interface_base: torch.Tensor,
                 recurrent_weight: torch.Tensor, interface_weight: torch.Tensor, hidden: torch.Tensor,
                 cell: torch.Tensor, reads: torch.Tensor, state: State, after: tuple, keep: bool):
    """The time loop, as ``MemoryLearner.run``'s step loop computes it (``_forward_step``). Returns
    ((hiddens (T, B, C), reads (T, B, R·W), last hidden, cell, reads, memory state), per-step saved
    tensors if ``keep``)."""
    step = _steps(loop)[0]
    hiddens, read_log, steps = [], [], []
    for controller_in, interface_in in zip(controller_base.unbind(0), interface_base.unbind(0)):
        hidden, cell, reads, state, saved = step(controller_in, interface_in, recurrent_weight, interface_weight,
                                                 hidden, cell, reads, state, after)
        hiddens.append(hidden)
        read_log.append(reads)
        if keep:
            steps.append(saved)
    return (torch.stack(hiddens), torch.stack(read_log), hidden, cell, reads, *state), steps


class FusedRun(torch.autograd.Function):
    """``forward_loop`` as one autograd node: (loop, access, controller_base (T, B, G),
    interface_base (T, B, I), recurrent weight (G, K), interface weight (I, C), hidden, cell, reads,
    *memory state) -> (hiddens, reads of every step, last hidden, cell, reads, *memory state)."""

    @staticmethod
    def forward(ctx, loop: _Loop, access: FusedAccess, controller_base, interface_base, recurrent_weight,
                interface_weight, hidden, cell, reads, *state):
        outputs, steps = forward_loop(loop, controller_base, interface_base, recurrent_weight, interface_weight,
                                      hidden, cell, reads, state, access.after, keep=True)
        ctx.loop, ctx.backward_after, ctx.layout = loop, access.backward_after, [(len(c), len(a)) for _, c, a in steps]
        ctx.save_for_backward(recurrent_weight, interface_weight, outputs[0],
                              *(t for r, c, a in steps for t in (r, *c, *a)))
        ctx.mark_non_differentiable(*(outputs[5 + i] for i in loop.constant))
        if not loop.lstm:
            outputs = (*outputs[:3], outputs[3].clone(), *outputs[4:])  # the unchanged cell, as a new tensor
        return outputs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_hiddens, grad_read_log, grad_hidden, grad_cell, grad_reads, *grad_state):
        recurrent_weight, interface_weight, hiddens, *flat = ctx.saved_tensors
        steps = _unflatten(flat, ctx.layout)
        step = _steps(ctx.loop)[1]
        grad_pre, grad_interface = [None] * len(steps), [None] * len(steps)
        for t in reversed(range(len(steps))):
            grad_interface[t], grad_pre[t], grad_state, grad_reads, grad_hidden, grad_cell = step(
                steps[t], grad_state, grad_reads, grad_read_log[t], grad_hidden, grad_hiddens[t], grad_cell,
                recurrent_weight, interface_weight, ctx.backward_after)
        grad_controller_base, grad_interface_base = torch.stack(grad_pre), torch.stack(grad_interface)  # (T, B, ·)
        grad_recurrent_weight = grad_interface_weight = None
        if ctx.needs_input_grad[4]:  # one (G, T·B) x (T·B, K) product instead of T small ones
            recurrent_ins = torch.stack([recurrent_in for recurrent_in, _, _ in steps])
            grad_recurrent_weight = grad_controller_base.flatten(0, 1).t() @ recurrent_ins.flatten(0, 1)
        if ctx.needs_input_grad[5]:
            grad_interface_weight = grad_interface_base.flatten(0, 1).t() @ hiddens.flatten(0, 1)
        return (None, None, grad_controller_base, grad_interface_base, grad_recurrent_weight, grad_interface_weight,
                grad_hidden, grad_cell, grad_reads, *grad_state)


def _unflatten(flat: list, layout: list[tuple[int, int]]) -> list[tuple]:
    """``FusedRun.forward``'s saved tensors, one flat list, back into (recurrent input, controller
    saved, access saved) per step; ``layout`` holds each step's two saved counts."""
    steps, position = [], 0
    for controller_size, access_size in layout:
        middle, end = position + 1 + controller_size, position + 1 + controller_size + access_size
        steps.append((flat[position], tuple(flat[position + 1 : middle]), tuple(flat[middle:end])))
        position = end
    return steps


def fused_run(access: FusedAccess, lstm: bool, compiled: bool, controller_base: torch.Tensor,
              interface_base: torch.Tensor, recurrent_weight: torch.Tensor, interface_weight: torch.Tensor,
              hidden: torch.Tensor, cell: torch.Tensor, reads: torch.Tensor, state: State):
    """The time loop (``forward_loop``), as one autograd node while gradients are recorded and as
    a plain loop that keeps nothing otherwise."""
    loop = _Loop.of(access, lstm, compiled)
    if torch.is_grad_enabled():
        return FusedRun.apply(loop, access, controller_base, interface_base, recurrent_weight, interface_weight,
                              hidden, cell, reads, *state)
    outputs, _ = forward_loop(loop, controller_base, interface_base, recurrent_weight, interface_weight, hidden,
                              cell, reads, state, access.after, keep=False)
    return outputs
