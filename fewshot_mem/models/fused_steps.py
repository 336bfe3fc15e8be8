"""Per-time-step pieces of the fast ``run`` with hand-derived backward passes: each call is one
autograd node instead of tens. At Santoro's size a step's tensors are tiny (16 x 128 x 40), so
recording and replaying the graph of tens of small operations costs more than their arithmetic.

The forward passes compute exactly what the definitions compute (``nn.LSTMCell`` after its
products; ``memory.lru`` and ``memory.addressing`` for MANN's access); the backward passes are
the chain rule written out. ``fast_path_check`` compares both, gradients included, in float64.
"""

from __future__ import annotations

import torch

from ..memory import addressing, lru


class LSTMCellStep(torch.autograd.Function):
    """(B, 4C) pre-activations in torch's gate order (input, forget, cell, output) and the
    (B, C) cell -> the next (hidden, cell)."""

    @staticmethod
    def forward(ctx, gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = cell.shape[-1]
        activated = gates.sigmoid()  # (B, 4C); the cell candidate's quarter is replaced by its tanh
        activated[:, 2 * c : 3 * c] = gates[:, 2 * c : 3 * c].tanh()
        i, f, g, o = activated.chunk(4, dim=-1)
        new_cell = f * cell + i * g
        squashed = new_cell.tanh()
        ctx.save_for_backward(activated, cell, squashed)
        return o * squashed, new_cell

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_hidden: torch.Tensor, grad_cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        activated, cell, squashed = ctx.saved_tensors
        i, f, g, o = activated.chunk(4, dim=-1)
        grad_cell = grad_cell + grad_hidden * o * (1 - squashed * squashed)  # dL/dc_t, all of it
        # dL/d(pre-activation) = dL/d(gate) x the gate's derivative: σ' = σ(1 − σ), tanh' = 1 − tanh².
        grad_gates = torch.cat([grad_cell * g, grad_cell * cell, grad_cell * i, grad_hidden * squashed], dim=-1)
        slope = activated * (1 - activated)
        c = cell.shape[-1]
        slope[:, 2 * c : 3 * c] = 1 - g * g
        return grad_gates * slope, grad_cell * f


class LRUAccessStep(torch.autograd.Function):
    """MANN's access (``MANN.access``): from the (B, R·(W + 1)) interface vector and
    (memory (B, N, W), read weights (B, R, N), usage (B, N), least-used weights (B, N)) to the
    next (memory, read weights, usage, least-used weights, reads (B, R·W))."""

    @staticmethod
    def forward(ctx, interface: torch.Tensor, memory: torch.Tensor, read_w: torch.Tensor, usage: torch.Tensor,
                least_used: torch.Tensor, usage_decay: float):
        b, h, n = read_w.shape
        w = memory.shape[-1]
        keys = interface[:, : h * w].tanh().view(b, h, w)  # (B, R, W)
        gates = interface[:, h * w :].sigmoid().unsqueeze(-1)  # σ(α) (B, R, 1)
        write_w = torch.lerp(least_used.unsqueeze(1), read_w, gates)  # (B, R, N), lru.lru_write_weights
        keep = lru.zero_least_used(memory.new_ones(b, n, 1), usage)  # (B, N, 1): 0 at the least used slot
        written = torch.baddbmm(memory * keep, write_w.transpose(1, 2), keys)  # (B, N, W), addressing.add_write
        key_norm = addressing._safe_norm(keys).unsqueeze(-1)  # (B, R, 1)
        memory_norm = addressing._safe_norm(written).unsqueeze(1)  # (B, 1, N)
        cosine = torch.bmm(keys, written.transpose(1, 2)) / (key_norm * memory_norm)  # (B, R, N)
        new_read_w = torch.softmax(cosine, dim=-1)  # key strength 1, as MANN.access
        reads = torch.bmm(new_read_w, written)  # (B, R, W)
        new_usage = lru.update_usage(usage, new_read_w, write_w, usage_decay)
        new_least_used = lru.least_used_weights(new_usage, h)
        ctx.usage_decay = usage_decay
        ctx.save_for_backward(keys, gates, write_w, read_w, least_used, keep, written, key_norm, memory_norm,
                              cosine, new_read_w)
        ctx.mark_non_differentiable(new_least_used)
        return written, new_read_w, new_usage, new_least_used, reads.view(b, h * w)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_memory, grad_read_w, grad_usage, _grad_least_used, grad_reads):
        (keys, gates, write_w, read_w, least_used, keep, written, key_norm, memory_norm, cosine,
         new_read_w) = ctx.saved_tensors
        grad_reads = grad_reads.view_as(keys)  # (B, R, W)
        spread_usage = grad_usage.unsqueeze(1)  # usage sums both weightings over heads: (B, 1, N)
        # reads = w^r M_t
        grad_new_read_w = grad_read_w + spread_usage + torch.bmm(grad_reads, written.transpose(1, 2))
        grad_written = grad_memory + torch.bmm(new_read_w.transpose(1, 2), grad_reads)
        # w^r = softmax(K), K = k·M / (‖k‖ ‖M‖)
        grad_cosine = new_read_w * (grad_new_read_w - (grad_new_read_w * new_read_w).sum(-1, keepdim=True))
        grad_dots = grad_cosine / (key_norm * memory_norm)
        along = grad_cosine * cosine  # d‖·‖ terms: dK/d‖k‖ = −K / ‖k‖, and ∂‖x‖/∂x = x / ‖x‖
        grad_keys = torch.bmm(grad_dots, written) - (along.sum(-1, keepdim=True) / key_norm ** 2) * keys
        grad_written = (grad_written + torch.bmm(grad_dots.transpose(1, 2), keys)
                        - (along.sum(1).unsqueeze(-1) / memory_norm.transpose(1, 2) ** 2) * written)
        # M_t = M_{t−1} ∘ keep + (w^w)ᵀ k
        grad_write_w = spread_usage + torch.bmm(keys, grad_written.transpose(1, 2))  # (B, R, N)
        grad_keys = grad_keys + torch.bmm(write_w, grad_written)
        # w^w = σ(α) w^r_{t−1} + (1 − σ(α)) w^lu_{t−1}
        grad_gates = (grad_write_w * (read_w - least_used.unsqueeze(1))).sum(-1, keepdim=True)  # (B, R, 1)
        grad_interface = torch.cat([(grad_keys * (1 - keys * keys)).flatten(1),
                                    (grad_gates * gates * (1 - gates)).squeeze(-1)], dim=-1)
        return (grad_interface, grad_written * keep, gates * grad_write_w, ctx.usage_decay * grad_usage,
                ((1 - gates) * grad_write_w).sum(1), None)
