"""Content and location addressing, reads and writes (Graves et al. 2014, "Neural Turing
Machines", section 3). Pure functions over batched tensors: no state, no modules.

Shapes: B batch, H heads, N memory slots, W slot width, S shift offsets (odd).
"""

from __future__ import annotations

import torch

__all__ = [
    "EPSILON",
    "add_write",
    "circular_shift",
    "content_weights",
    "cosine_similarity",
    "erase_and_add",
    "interpolate",
    "ntm_address",
    "read",
    "sharpen",
    "shift_sources",
]

EPSILON = 1e-6


def _safe_norm(x: torch.Tensor) -> torch.Tensor:
    """‖x‖ = sqrt(Σ_w x_w² + ε) over the last dimension: never zero, so neither the
    norm's gradient nor a division by it is ever NaN.

    Args:
        x: (..., W).
    Returns:
        (...,).
    """
    return torch.sqrt((x * x).sum(dim=-1) + EPSILON)


def cosine_similarity(memory: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """K(k, M_i) = k·M_i / (‖k‖ ‖M_i‖), with ‖x‖ = sqrt(Σ x² + ε).

    Args:
        memory: (B, N, W).
        keys: (B, H, W).
    Returns:
        (B, H, N) similarities in [-1, 1]; exactly zero, with finite gradients,
        for a zero key or a zero memory row.
    """
    dots = torch.einsum("bhw,bnw->bhn", keys, memory)  # (B, H, N)
    norms = _safe_norm(keys).unsqueeze(-1) * _safe_norm(memory).unsqueeze(1)  # (B, H, 1)·(B, 1, N)
    return dots / norms


def content_weights(memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """w^c(i) = exp(β K(k, M_i)) / Σ_j exp(β K(k, M_j)).

    Args:
        memory: (B, N, W).
        keys: (B, H, W).
        strengths: (B, H) key strengths β ≥ 0 (callers apply their paper's
            softplus, or 1 + softplus).
    Returns:
        (B, H, N) weights, each head's row summing to 1.
    """
    return torch.softmax(strengths.unsqueeze(-1) * cosine_similarity(memory, keys), dim=-1)


def interpolate(content_w: torch.Tensor, previous_w: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """w^g_t = g_t w^c_t + (1 − g_t) w_{t−1}.

    Args:
        content_w: (B, H, N) this step's content weights.
        previous_w: (B, H, N) the heads' weights at t − 1.
        gate: (B, H) interpolation gate g in [0, 1].
    Returns:
        (B, H, N).
    """
    gate = gate.unsqueeze(-1)  # (B, H, 1)
    return gate * content_w + (1 - gate) * previous_w


def circular_shift(weights: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """w̃(i) = Σ_j w(j) s(i − j mod N), s a distribution over offsets −(S//2) .. +(S//2).

    An offset of +1 moves each slot's weight to the next slot (a ``torch.roll``
    by +1). Implemented as one gather with precomputed indices followed by an
    einsum over the S offsets.

    Args:
        weights: (B, H, N).
        shift: (B, H, S), S odd; shift[..., k] is the weight of offset k − S//2
            (so for S = 3 the order is −1, 0, +1).
    Returns:
        (B, H, N).
    """
    moved = weights[..., shift_sources(weights.shape[-1], shift.shape[-1], weights.device)]  # (B, H, S, N)
    return torch.einsum("bhsn,bhs->bhn", moved, shift)  # moved[b, h, k, i] = w[b, h, i − offset_k]


def shift_sources(n: int, s: int, device: torch.device | None = None, direction: int = 1) -> torch.Tensor:
    """source[k, i] = (i − direction · o_k) mod N, the offsets o_k = k − S//2: with direction 1 the
    slot that offset k carries onto slot i (``circular_shift`` gathers with it); with −1 the slot
    it carries slot i onto (the shift's backward gathers the gradient with it).

    Args:
        n: N memory slots.
        s: S shift offsets (odd).
    Returns:
        (S, N) slot indices.
    """
    offsets = torch.arange(s, device=device) - s // 2  # (S,)
    return (torch.arange(n, device=device).unsqueeze(0) - direction * offsets.unsqueeze(1)) % n


def sharpen(weights: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """w(i) = (w̃(i) + ε)^γ / Σ_j (w̃(j) + ε)^γ.

    The ε keeps the normaliser non-zero for an all-zero weighting (which then
    sharpens to uniform, not NaN) and log(w̃ + ε), the γ-gradient's factor,
    finite; it moves each weight by O(ε), so γ = 1 is the identity up to that.

    Args:
        weights: (B, H, N), non-negative.
        gamma: (B, H), γ ≥ 1.
    Returns:
        (B, H, N), each row summing to 1.
    """
    powered = (weights + EPSILON).pow(gamma.unsqueeze(-1))
    return powered / powered.sum(dim=-1, keepdim=True)


def ntm_address(memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor, gate: torch.Tensor,
                shift: torch.Tensor, gamma: torch.Tensor, previous_w: torch.Tensor) -> torch.Tensor:
    """The NTM addressing pipeline: w_t = sharpen(shift(interpolate(w^c_t, w_{t−1}, g), s), γ),
    w^c_t = content_weights(M, k, β).

    Args:
        memory: (B, N, W).
        keys: (B, H, W).
        strengths: (B, H) β ≥ 0.
        gate: (B, H) g in [0, 1].
        shift: (B, H, S) a distribution over offsets −(S//2) .. +(S//2).
        gamma: (B, H) γ ≥ 1.
        previous_w: (B, H, N) the heads' weights at t − 1.
    Returns:
        (B, H, N) the heads' weights at t.
    """
    content = content_weights(memory, keys, strengths)
    return sharpen(circular_shift(interpolate(content, previous_w, gate), shift), gamma)


def read(memory: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """r_h = Σ_i w_h(i) M(i).

    Args:
        memory: (B, N, W).
        weights: (B, H, N) read weights.
    Returns:
        (B, H, W) one read vector per head.
    """
    return torch.einsum("bhn,bnw->bhw", weights, memory)


def erase_and_add(memory: torch.Tensor, weights: torch.Tensor, erase: torch.Tensor,
                  add: torch.Tensor) -> torch.Tensor:
    """M_t = M_{t−1} ∘ Π_h (1 − w_h e_hᵀ) + Σ_h w_h a_hᵀ.

    Order with several write heads: every head erases first (the erase factors
    multiply), then every head adds (the adds sum). Multiplication and addition
    commute, so the result does not depend on the order of the heads, as the
    NTM paper (section 3.2) points out.

    Args:
        memory: (B, N, W).
        weights: (B, H, N) write weights.
        erase: (B, H, W) erase vectors in [0, 1].
        add: (B, H, W) add vectors.
    Returns:
        (B, N, W) the new memory.
    """
    keep = (1 - weights.unsqueeze(-1) * erase.unsqueeze(2)).prod(dim=1)  # (B, H, N, W) → (B, N, W)
    return memory * keep + torch.einsum("bhn,bhw->bnw", weights, add)


def add_write(memory: torch.Tensor, weights: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """M_t = M_{t−1} + Σ_h w_h a_hᵀ (no erase: the MANN write of Santoro et al. 2016).

    Args:
        memory: (B, N, W).
        weights: (B, H, N) write weights.
        add: (B, H, W) the vectors written (MANN writes its keys).
    Returns:
        (B, N, W) the new memory.
    """
    return memory + torch.einsum("bhn,bhw->bnw", weights, add)
