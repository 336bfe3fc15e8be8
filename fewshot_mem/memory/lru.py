"""Least-recently-used access (Santoro et al. 2016, "Meta-learning with memory-augmented
neural networks", ICML, section 3.1). Pure functions over batched tensors.

Shapes: B batch, H heads, N memory slots, W slot width.
"""

from __future__ import annotations

import torch


def update_usage(previous_usage: torch.Tensor, read_w: torch.Tensor, write_w: torch.Tensor,
                 usage_decay: float) -> torch.Tensor:
    """w^u_t = γ w^u_{t−1} + Σ_h w^r_{t,h} + Σ_h w^w_{t,h}.

    Args:
        previous_usage: (B, N).
        read_w, write_w: (B, H, N).
        usage_decay: γ in [0, 1].
    Returns:
        (B, N).
    """
    return usage_decay * previous_usage + read_w.sum(dim=1) + write_w.sum(dim=1)


def least_used_weights(usage: torch.Tensor, n: int) -> torch.Tensor:
    """w^lu(i) = 1 if w^u(i) ≤ m(w^u, n) else 0, m(v, n) the n-th smallest element of v.

    Exactly n slots are marked: among tied usages the lower slot index wins
    (``topk`` order), which the paper leaves open.

    Args:
        usage: (B, N).
        n: how many slots to mark (the paper uses the number of reads).
    Returns:
        (B, N) of 0s and 1s, no gradient (an indicator).
    """
    least = torch.topk(-usage.detach(), n, dim=-1, sorted=False).indices  # (B, n)
    return torch.zeros_like(usage).scatter_(-1, least, 1.0)


def lru_write_weights(previous_read_w: torch.Tensor, previous_least_used_w: torch.Tensor,
                      write_gate_logits: torch.Tensor) -> torch.Tensor:
    """w^w_t = σ(α) w^r_{t−1} + (1 − σ(α)) w^lu_{t−1}.

    Args:
        previous_read_w: (B, H, N).
        previous_least_used_w: (B, N), shared by the heads.
        write_gate_logits: (B, H) the α of each head.
    Returns:
        (B, H, N).
    """
    gate = torch.sigmoid(write_gate_logits).unsqueeze(-1)  # (B, H, 1)
    return gate * previous_read_w + (1 - gate) * previous_least_used_w.unsqueeze(1)


def zero_least_used(memory: torch.Tensor, previous_usage: torch.Tensor) -> torch.Tensor:
    """Zeroes the least-used slot, from w^u_{t−1}, before the write.

    The paper: "Prior to writing to memory, the least used memory location is
    computed from w^u_{t−1} and is set to zero." An early public
    implementation left this step out, so old memories were never cleared.

    Args:
        memory: (B, N, W).
        previous_usage: (B, N).
    Returns:
        (B, N, W) with one row per batch element set to zero.
    """
    least = previous_usage.detach().argmin(dim=-1)  # (B,)
    keep = torch.ones_like(previous_usage).scatter_(-1, least.unsqueeze(-1), 0.0)  # (B, N)
    return memory * keep.unsqueeze(-1)
