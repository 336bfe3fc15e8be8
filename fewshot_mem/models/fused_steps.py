"""The per-time-step pieces of the memory models' fast ``run``, each as a forward and a backward
body with the backward derived by hand: the LSTM cell, MANN's LRU access and the NTM's access
(``fused_dnc`` has the DNC's). ``fused_run`` runs a whole sequence of them as one autograd node; at
Santoro's size a step's tensors are tiny (16 x 128 x 40), so recording and replaying the graph of
tens of small operations a step would cost more than their arithmetic.

The forward passes compute what the definitions compute (``nn.LSTMCell`` after its products;
``memory.lru`` and ``memory.addressing`` for MANN's and the NTM's access; ``fused_dnc`` does the
same for the DNC's); the backward passes are the chain rule written out. ``fast_path_check``
compares both, gradients included, in float64.

Each forward and backward body is a plain function of tensors, so it can also run compiled
(``compiled=True``: torch.compile/inductor fuses each body's tens of element-wise operations into
a few loops; compiled once per process, dtype and shape family, and cached on disk by inductor).
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from ..memory import addressing, lru


def lstm_forward(gates: torch.Tensor, cell: torch.Tensor):
    """(B, 4C) pre-activations in torch's gate order (input, forget, cell, output), (B, C) cell ->
    ((hidden, cell), tensors for the backward)."""
    c = cell.shape[-1]
    activated = torch.cat([gates[:, : 2 * c].sigmoid(), gates[:, 2 * c : 3 * c].tanh(), gates[:, 3 * c :].sigmoid()],
                          dim=-1)
    i, f, g, o = activated.chunk(4, dim=-1)
    new_cell = f * cell + i * g
    squashed = new_cell.tanh()
    return (o * squashed, new_cell), (activated, cell, squashed)


def lstm_backward(activated: torch.Tensor, cell: torch.Tensor, squashed: torch.Tensor, grad_hidden: torch.Tensor,
                  grad_cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    i, f, g, o = activated.chunk(4, dim=-1)
    grad_cell = grad_cell + grad_hidden * o * (1 - squashed * squashed)  # dL/dc_t, all of it
    # dL/d(pre-activation) = dL/d(gate) x the gate's derivative: σ' = σ(1 − σ), tanh' = 1 − tanh².
    return torch.cat([grad_cell * g * i * (1 - i), grad_cell * cell * f * (1 - f), grad_cell * i * (1 - g * g),
                      grad_hidden * squashed * o * (1 - o)], dim=-1), grad_cell * f


def batched_product(a: torch.Tensor, b: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """[add +] a @ b for a (B, X, K) and b (B, K, Y): a BLAS batched product where it runs eagerly,
    and in a compiled body the broadcast product summed over K, which inductor turns into a loop
    fused with the element-wise work around it. At Santoro's size these products are tiny (16
    episodes of 4 x 40 x 128), and the BLAS call costs more than its arithmetic: compiled, MANN's
    training step took about 9% less time this way (README Speed). Eager results stay bit for bit
    what they were, so evaluation, which runs eagerly, is unchanged."""
    if torch.compiler.is_compiling():
        product = (a.unsqueeze(-1) * b.unsqueeze(1)).sum(2)  # (B, X, K, Y) summed over K, never stored
        return product if add is None else add + product
    return torch.bmm(a, b) if add is None else torch.baddbmm(add, a, b)


def softmax_backward(grad: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """dL/dz of p = softmax(z) over the last dimension: p ∘ (dL/dp − Σ p ∘ dL/dp)."""
    return probabilities * (grad - (grad * probabilities).sum(-1, keepdim=True))


def cosine_backward(grad_cosine: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, cosine: torch.Tensor,
                    key_norm: torch.Tensor, memory_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of keys (B, H, W) and memory (B, N, W) from that of K = k·M / (‖k‖ ‖M‖)
    (``addressing.cosine_similarity``, (B, H, N)); key_norm (B, H, 1), memory_norm (B, 1, N)."""
    grad_dots = grad_cosine / (key_norm * memory_norm)
    along = grad_cosine * cosine  # the norms' terms: dK/d‖k‖ = −K / ‖k‖, and ∂‖x‖/∂x = x / ‖x‖
    grad_keys = batched_product(grad_dots, memory) - (along.sum(-1, keepdim=True) / key_norm ** 2) * keys
    grad_memory = (batched_product(grad_dots.transpose(1, 2), keys)
                   - (along.sum(1).unsqueeze(-1) / memory_norm.transpose(1, 2) ** 2) * memory)
    return grad_keys, grad_memory


def lru_forward(interface: torch.Tensor, memory: torch.Tensor, read_w: torch.Tensor, usage: torch.Tensor,
                least_used: torch.Tensor, usage_decay: float, separate_add: bool = False, learned_strength: bool = False):
    """MANN's access (``MANN.access`` with reads of the memory just written and one shared
    least-used mark): from the (B, I) interface vector, I = R·(W + 1) [+ R·W add vectors if
    ``separate_add``] [+ R key strengths if ``learned_strength``], and (memory (B, N, W), read
    weights (B, R, N), usage (B, N), least-used weights (B, N)) to ((memory, read weights, usage,
    least-used weights, reads (B, R·W)), tensors for the backward)."""
    b, h, n = read_w.shape
    w = memory.shape[-1]
    keys = interface[:, : h * w].tanh().view(b, h, w)  # (B, R, W)
    gates = interface[:, h * w : h * w + h].sigmoid().unsqueeze(-1)  # σ(α) (B, R, 1)
    added = interface[:, h * w + h : 2 * h * w + h].tanh().view(b, h, w) if separate_add else keys  # (B, R, W)
    strength_in = interface[:, -h:] if learned_strength else None  # β̂ (B, R)
    write_w = torch.lerp(least_used.unsqueeze(1), read_w, gates)  # (B, R, N), lru.lru_write_weights
    keep = lru.zero_least_used(memory.new_ones(b, n, 1), usage)  # (B, N, 1): 0 at the least used slot
    written = batched_product(write_w.transpose(1, 2), added, memory * keep)  # (B, N, W), addressing.add_write
    key_norm, memory_norm = content_norms(keys, written)  # (B, R, 1), (B, 1, N)
    cosine = batched_product(keys, written.transpose(1, 2)) / (key_norm * memory_norm)  # (B, R, N)
    strengths = torch.nn.functional.softplus(strength_in).unsqueeze(-1) if learned_strength else None  # β (B, R, 1)
    new_read_w = torch.softmax(cosine if strengths is None else strengths * cosine, dim=-1)  # Santoro: β = 1
    reads = batched_product(new_read_w, written)  # (B, R, W)
    new_usage = lru.update_usage(usage, new_read_w, write_w, usage_decay)
    outputs = written, new_read_w, new_usage, lru.least_used_weights(new_usage, h), reads.view(b, h * w)
    strength_slope = None if strength_in is None else softplus_slope(strength_in)
    return outputs, (keys, gates, added if separate_add else None, strengths, strength_slope, write_w, read_w,
                     least_used, keep, written, key_norm, memory_norm, cosine, new_read_w)


def lru_backward(keys, gates, added, strengths, strength_slope, write_w, read_w, least_used, keep, written, key_norm,
                 memory_norm, cosine, new_read_w, grad_memory, grad_read_w, grad_usage, grad_reads, usage_decay: float):
    """The gradients of ``lru_forward``'s inputs (interface, memory, read weights, usage,
    least-used weights) from those of its outputs (the least-used weights carry none). ``added``
    and ``strengths`` are None where the keys are written and β = 1."""
    grad_reads = grad_reads.view_as(keys)  # (B, R, W)
    spread_usage = grad_usage.unsqueeze(1)  # usage sums both weightings over heads: (B, 1, N)
    # reads = w^r M_t
    grad_new_read_w = grad_read_w + spread_usage + batched_product(grad_reads, written.transpose(1, 2))
    grad_written = grad_memory + batched_product(new_read_w.transpose(1, 2), grad_reads)
    # w^r = softmax(β K), K = k·M / (‖k‖ ‖M‖), β = softplus(β̂)
    grad_logits = softmax_backward(grad_new_read_w, new_read_w)
    grad_cosine = grad_logits if strengths is None else strengths * grad_logits
    grad_keys, grad_through_cosine = cosine_backward(grad_cosine, keys, written, cosine, key_norm, memory_norm)
    grad_written = grad_written + grad_through_cosine
    # M_t = M_{t−1} ∘ keep + (w^w)ᵀ a, a = k or tanh(â)
    written_vectors = keys if added is None else added
    grad_write_w = spread_usage + batched_product(written_vectors, grad_written.transpose(1, 2))  # (B, R, N)
    grad_added = batched_product(write_w, grad_written)  # (B, R, W)
    if added is None:
        grad_keys = grad_keys + grad_added
    # w^w = σ(α) w^r_{t−1} + (1 − σ(α)) w^lu_{t−1}
    grad_gates = (grad_write_w * (read_w - least_used.unsqueeze(1))).sum(-1, keepdim=True)  # (B, R, 1)
    parts = [(grad_keys * (1 - keys * keys)).flatten(1), (grad_gates * gates * (1 - gates)).squeeze(-1)]
    if added is not None:
        parts.append((grad_added * (1 - added * added)).flatten(1))
    if strengths is not None:
        parts.append((grad_logits * cosine).sum(-1) * strength_slope)  # dL/dβ̂ (B, R)
    return (torch.cat(parts, dim=-1), grad_written * keep, gates * grad_write_w, usage_decay * grad_usage,
            ((1 - gates) * grad_write_w).sum(1))


def content_norms(keys: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """‖k‖ (B, H, 1) and ‖M‖ (B, 1, N), as ``addressing.cosine_similarity`` computes them."""
    return addressing._safe_norm(keys).unsqueeze(-1), addressing._safe_norm(memory).unsqueeze(1)


def softplus_slope(x: torch.Tensor) -> torch.Tensor:
    """d softplus(x)/dx = σ(x), and exactly 1 above the threshold (20) where softplus returns x."""
    return torch.where(x > 20, torch.ones_like(x), x.sigmoid())


def ntm_interface_parameters(interface: torch.Tensor, heads: int, width: int):
    """The NTM's (B, I) interface vector split into its quantities, each head's first (reads, then
    the write head): keys (B, H, W), strengths β ≥ 0 (B, H), gates g (B, H), shifts s (B, H, S),
    sharpness γ ≥ 1 (B, H), then the write head's erase and add vectors (B, W) each."""
    b, w = interface.shape[0], width
    per_head = interface[:, : interface.shape[1] - 2 * w].view(b, heads, -1)  # (B, H, W + 3 + S)
    keys = torch.tanh(per_head[..., :w])
    strength = torch.nn.functional.softplus(per_head[..., w])
    gate = torch.sigmoid(per_head[..., w + 1])
    sharpness = 1 + torch.nn.functional.softplus(per_head[..., w + 2])
    shift = torch.softmax(per_head[..., w + 3 :], dim=-1)
    erase, add = torch.sigmoid(interface[:, -2 * w : -w]), torch.tanh(interface[:, -w:])
    return keys, strength, gate, shift, sharpness, erase, add


def ntm_forward(interface: torch.Tensor, memory: torch.Tensor, previous_w: torch.Tensor):
    """The NTM's access (``NTM.access``: H = R + 1 heads, the write head last): from the (B, I)
    interface vector, memory (B, N, W) and the heads' previous weights (B, H, N) to
    ((memory, weights (B, H, N), reads (B, R·W)), tensors for the backward). The operations are
    those of ``memory.addressing``, in its order, so the outputs are ``NTM.access``'s bit for bit."""
    b, h, n = previous_w.shape
    w = memory.shape[-1]
    keys, strength, gate, shift, sharpness, erase, add = ntm_interface_parameters(interface, h, w)
    per_head = interface[:, : interface.shape[1] - 2 * w].view(b, h, -1)  # the logits, for the slopes
    strength_in, sharpness_in = per_head[..., w], per_head[..., w + 2]  # (B, H)
    cosine = addressing.cosine_similarity(memory, keys)  # K (B, H, N)
    content_w = torch.softmax(strength.unsqueeze(-1) * cosine, dim=-1)  # addressing.content_weights
    gated = addressing.interpolate(content_w, previous_w, gate)
    moved = gated[..., addressing.shift_sources(n, shift.shape[-1], gated.device)]  # (B, H, S, N), as circular_shift
    shifted = torch.einsum("bhsn,bhs->bhn", moved, shift)
    new_w = addressing.sharpen(shifted, sharpness)  # (B, H, N)
    reads = addressing.read(memory, new_w[:, :-1]).flatten(1)  # (B, R·W), from M_{t−1}
    new_memory = addressing.erase_and_add(memory, new_w[:, -1:], erase[:, None], add[:, None])
    saved = (keys, strength, softplus_slope(strength_in), gate.unsqueeze(-1), shift, erase, add,
             softplus_slope(sharpness_in), sharpness, memory, previous_w, cosine, content_w, moved, shifted, new_w)
    return (new_memory, new_w, reads), saved


def ntm_backward(keys, strength, strength_slope, gate, shift, erase, add, sharpness_slope, sharpness, memory,
                 previous_w, cosine, content_w, moved, shifted, new_w, grad_memory, grad_w, grad_reads):
    """The gradients of ``ntm_forward``'s inputs (interface, memory, previous weights) from those
    of its outputs (memory, weights, reads)."""
    b, h, n = new_w.shape
    write_w = new_w[:, -1].unsqueeze(-1)  # (B, N, 1)
    grad_reads = grad_reads.view(b, h - 1, -1)  # (B, R, W)
    # M_t = M_{t−1} ∘ (1 − w^w eᵀ) + w^w aᵀ; reads r = w^r M_{t−1}
    grad_memory_in = (grad_memory * (1 - write_w * erase.unsqueeze(1))
                      + batched_product(new_w[:, :-1].transpose(1, 2), grad_reads))
    weighted = grad_memory * write_w  # (B, N, W)
    grad_erase = -(weighted * memory).sum(1)  # (B, W)
    grad_add = weighted.sum(1)
    grad_write_w = (grad_memory * (add.unsqueeze(1) - erase.unsqueeze(1) * memory)).sum(-1)  # (B, N)
    grad_new_w = grad_w + torch.cat([batched_product(grad_reads, memory.transpose(1, 2)), grad_write_w.unsqueeze(1)],
                                    1)
    # Sharpening w = (w̃ + ε)^γ / Σ (w̃ + ε)^γ: with q = w (∂L/∂w − Σ w ∂L/∂w),
    # ∂L/∂w̃ = γ q / (w̃ + ε) and ∂L/∂γ = Σ q log(w̃ + ε).
    q = new_w * (grad_new_w - (grad_new_w * new_w).sum(-1, keepdim=True))
    lifted = shifted + addressing.EPSILON
    grad_shifted = sharpness.unsqueeze(-1) * q / lifted
    grad_sharpness = (q * lifted.log()).sum(-1)  # (B, H)
    # Shift w̃(i) = Σ_k w^g(i − o_k) s_k
    grad_shift = torch.einsum("bhsn,bhn->bhs", moved, grad_shifted)
    back = grad_shifted[..., addressing.shift_sources(n, shift.shape[-1], grad_shifted.device, -1)]  # (B, H, S, N)
    grad_gated = torch.einsum("bhsn,bhs->bhn", back, shift)
    # Interpolation and the content softmax
    grad_gate = ((content_w - previous_w) * grad_gated).sum(-1)  # (B, H)
    grad_logits = softmax_backward(gate * grad_gated, content_w)
    grad_strength = (grad_logits * cosine).sum(-1)
    grad_keys, grad_through_cosine = cosine_backward(strength.unsqueeze(-1) * grad_logits, keys, memory, cosine,
                                                     *content_norms(keys, memory))
    grad_memory_in = grad_memory_in + grad_through_cosine
    per_head = torch.cat([grad_keys * (1 - keys * keys), (grad_strength * strength_slope).unsqueeze(-1),
                          grad_gate.unsqueeze(-1) * gate * (1 - gate), (grad_sharpness * sharpness_slope).unsqueeze(-1),
                          softmax_backward(grad_shift, shift)], dim=-1)
    grad_interface = torch.cat([per_head.flatten(1), grad_erase * erase * (1 - erase), grad_add * (1 - add * add)], 1)
    return grad_interface, grad_memory_in, (1 - gate) * grad_gated


@functools.cache
def compiled(function: Callable) -> Callable:
    """``function`` compiled by torch.compile (inductor), once per process, with inductor's C++
    wrapper: the compiled code's own calls (allocating the outputs, launching each fused kernel with
    its dozens of pointers) run in C++ instead of Python, which at Santoro's size is a tenth of a
    DNC time step. The kernels, and so the results, are the Python wrapper's."""
    return torch.compile(function, options={"cpp_wrapper": True})


def compiler_problem() -> str | None:
    """Why torch.compile cannot compile here (no C++ compiler, a broken toolchain), or None: a tiny
    function compiled and run once, seconds at most with inductor's cache."""
    try:
        torch.compile(lambda x: (x * 2).sin().sum())(torch.ones(4))
    except Exception as error:  # noqa: BLE001 - whatever the compiler raises is the answer
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''}"
    return None


def _body(body: Callable, compile: bool) -> Callable:
    return compiled(body) if compile else body


class LSTMCellStep(torch.autograd.Function):
    """``lstm_forward`` and ``lstm_backward`` as one autograd node: (gates, cell, compiled) -> (hidden, cell)."""

    @staticmethod
    def forward(ctx, gates: torch.Tensor, cell: torch.Tensor, compiled: bool = False):
        outputs, saved = _body(lstm_forward, compiled)(gates, cell)
        ctx.save_for_backward(*saved)
        ctx.compiled = compiled
        return outputs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_hidden: torch.Tensor, grad_cell: torch.Tensor):
        return *_body(lstm_backward, ctx.compiled)(*ctx.saved_tensors, grad_hidden, grad_cell), None
