"""Content and location addressing, reads and writes (Graves et al. 2014, "Neural Turing
Machines"). Pure functions over batched tensors.

Shapes: B batch, H heads, N memory slots, W slot width, S shift offsets.
"""

from __future__ import annotations

import torch

EPSILON = 1e-6


def cosine_similarity(memory: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """K(k, M_i) = k·M_i / (‖k‖ ‖M_i‖ + ε).

    Args:
        memory: (B, N, W).
        keys: (B, H, W).
    Returns:
        (B, H, N) similarities in [-1, 1]; zero (not NaN) for a zero key or row.
    """
    dots = torch.einsum("bhw,bnw->bhn", keys, memory)
    norms = keys.norm(dim=-1, keepdim=True) * memory.norm(dim=-1).unsqueeze(1)  # (B, H, 1)·(B, 1, N)
    return dots / (norms + EPSILON)


def content_weights(memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """w^c_t(i) = softmax_i(β K(k, M_i)).

    Args:
        memory: (B, N, W).
        keys: (B, H, W).
        strengths: (B, H) key strengths β ≥ 0 (callers apply their paper's softplus).
    Returns:
        (B, H, N) weights, each row summing to 1.
    """
    return torch.softmax(strengths.unsqueeze(-1) * cosine_similarity(memory, keys), dim=-1)


def interpolate(content_w: torch.Tensor, previous_w: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """w^g_t = g w^c_t + (1 − g) w_{t−1}.

    Args:
        content_w, previous_w: (B, H, N).
        gate: (B, H) in [0, 1].
    Returns:
        (B, H, N).
    """
    gate = gate.unsqueeze(-1)
    return gate * content_w + (1 - gate) * previous_w


def circular_shift(weights: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """w̃(i) = Σ_j w(j) s(i − j mod N), offsets s over −(S//2)..+(S//2).

    Args:
        weights: (B, H, N).
        shift: (B, H, S) a distribution over the S (odd) offsets, lowest first.
    Returns:
        (B, H, N).
    """
    n, s = weights.shape[-1], shift.shape[-1]
    offsets = torch.arange(s, device=weights.device) - s // 2  # (S,)
    # source[o, i] = (i − offset_o) mod N: the slot that offset o moves onto slot i
    source = (torch.arange(n, device=weights.device) - offsets[:, None]) % n  # (S, N)
    moved = weights[..., source]  # (B, H, S, N)
    return torch.einsum("bhsn,bhs->bhn", moved, shift)


def sharpen(weights: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """w(i) = w̃(i)^γ / Σ_j w̃(j)^γ.

    Args:
        weights: (B, H, N), non-negative.
        gamma: (B, H), γ ≥ 1.
    Returns:
        (B, H, N).
    """
    powered = (weights + EPSILON).pow(gamma.unsqueeze(-1))
    return powered / powered.sum(dim=-1, keepdim=True)


def ntm_address(memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor, gate: torch.Tensor,
                shift: torch.Tensor, gamma: torch.Tensor, previous_w: torch.Tensor) -> torch.Tensor:
    """The NTM pipeline: content → interpolate → shift → sharpen.

    Args:
        memory: (B, N, W).
        keys: (B, H, W); strengths, gate, gamma: (B, H); shift: (B, H, S).
        previous_w: (B, H, N) the heads' weights at t − 1.
    Returns:
        (B, H, N) the heads' weights at t.
    """
    content = content_weights(memory, keys, strengths)
    return sharpen(circular_shift(interpolate(content, previous_w, gate), shift), gamma)


def read(memory: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """r = Σ_i w(i) M(i).

    Args:
        memory: (B, N, W).
        weights: (B, H, N).
    Returns:
        (B, H, W) one read vector per head.
    """
    return torch.bmm(weights, memory)


def erase_and_add(memory: torch.Tensor, weights: torch.Tensor, erase: torch.Tensor,
                  add: torch.Tensor) -> torch.Tensor:
    """M_t = M_{t−1} ∘ Π_h (1 − w_h e_hᵀ) + Σ_h w_h a_hᵀ.

    All heads erase first, then all add, so the result does not depend on the
    order of the heads.

    Args:
        memory: (B, N, W).
        weights: (B, H, N) write weights.
        erase: (B, H, W) in [0, 1].
        add: (B, H, W).
    Returns:
        (B, N, W).
    """
    keep = (1 - weights.unsqueeze(-1) * erase.unsqueeze(2)).prod(dim=1)  # (B, N, W)
    return memory * keep + torch.einsum("bhn,bhw->bnw", weights, add)


def add_write(memory: torch.Tensor, weights: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """M_t = M_{t−1} + Σ_h w_h a_hᵀ (no erase: MANN's write).

    Args:
        memory: (B, N, W).
        weights: (B, H, N).
        add: (B, H, W).
    Returns:
        (B, N, W).
    """
    return memory + torch.einsum("bhn,bhw->bnw", weights, add)
