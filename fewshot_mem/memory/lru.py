"""Least-recently-used access (Santoro et al. 2016, "Meta-learning with memory-augmented
neural networks", ICML, the "Least Recently Used Access" subsection). Pure functions
over batched tensors.

Shapes: B batch, H heads (the read heads; MANN writes with one write weighting per
read head), N memory slots, W slot width.
"""

from __future__ import annotations

import torch

__all__ = ["least_used_per_head", "least_used_weights", "lru_write_weights", "update_usage", "zero_least_used"]


def update_usage(previous_usage: torch.Tensor, read_w: torch.Tensor, write_w: torch.Tensor,
                 usage_decay: float) -> torch.Tensor:
    """w^u_t = γ w^u_{t−1} + Σ_h w^r_{t,h} + Σ_h w^w_{t,h}.

    Args:
        previous_usage: (B, N) w^u_{t−1}.
        read_w: (B, H, N) this step's read weights.
        write_w: (B, H, N) this step's write weights.
        usage_decay: γ in [0, 1].
    Returns:
        (B, N) w^u_t.
    """
    return usage_decay * previous_usage + read_w.sum(dim=1) + write_w.sum(dim=1)


def least_used_weights(usage: torch.Tensor, n: int) -> torch.Tensor:
    """w^lu(i) = 1 if w^u(i) ≤ m(w^u, n) else 0, m(v, n) the n-th smallest element of v.

    Ties: the paper's "≤" would mark more than n slots when usages tie at
    m(w^u, n). Here exactly n slots are marked, the n first of a stable
    ascending sort, so among tied usages the lower slot index wins (for n = 1
    the same slot as ``zero_least_used`` clears).

    Args:
        usage: (B, N) w^u.
        n: how many slots to mark, 1 ≤ n ≤ N (the paper uses the number of reads).
    Returns:
        (B, N) of 0s and 1s; an indicator, so it carries no gradient.
    """
    least = torch.argsort(usage.detach(), dim=-1, stable=True)[..., :n]  # (B, n)
    return torch.zeros_like(usage).scatter(-1, least, 1.0)


def least_used_per_head(usage: torch.Tensor, n: int) -> torch.Tensor:
    """w^lu_h(i) = 1 if slot i is the h-th least used, else 0: one distinct slot per head.

    A reading some reimplementations take of Santoro et al.'s w^lu (an ablation variant here:
    ``MANN(least_used="per-head")``): head h writes to the h-th smallest usage instead of all
    heads sharing the n-hot ``least_used_weights``. Ties as there: a stable ascending sort.

    Args:
        usage: (B, N) w^u.
        n: heads H, 1 ≤ H ≤ N.
    Returns:
        (B, H, N) one-hot rows; an indicator, so it carries no gradient.
    """
    least = torch.argsort(usage.detach(), dim=-1, stable=True)[..., :n]  # (B, H)
    return torch.zeros(*least.shape, usage.shape[-1], dtype=usage.dtype, device=usage.device
                       ).scatter(-1, least.unsqueeze(-1), 1.0)


def lru_write_weights(previous_read_w: torch.Tensor, previous_least_used_w: torch.Tensor,
                      write_gate_logits: torch.Tensor) -> torch.Tensor:
    """w^w_t = σ(α) w^r_{t−1} + (1 − σ(α)) w^lu_{t−1}.

    Args:
        previous_read_w: (B, H, N) w^r_{t−1}.
        previous_least_used_w: (B, N) w^lu_{t−1}, shared by the heads, or (B, H, N), one per head.
        write_gate_logits: (B, H) each head's α (the sigmoid is applied here).
    Returns:
        (B, H, N) w^w_t.
    """
    gate = torch.sigmoid(write_gate_logits).unsqueeze(-1)  # (B, H, 1)
    if previous_least_used_w.dim() == 2:
        previous_least_used_w = previous_least_used_w.unsqueeze(1)  # (B, 1, N): the same for every head
    return gate * previous_read_w + (1 - gate) * previous_least_used_w


def zero_least_used(memory: torch.Tensor, previous_usage: torch.Tensor) -> torch.Tensor:
    """M(i*) ← 0 for i* = argmin_i w^u_{t−1}(i), before the write.

    Santoro et al.: "Prior to writing to memory, the least used memory
    location is computed from w^u_{t−1} and is set to zero." An early public
    implementation omitted this step, so stale memories were never cleared.
    Exactly one slot per batch element is cleared; ties go to the lowest index.

    Args:
        memory: (B, N, W) M_{t−1}.
        previous_usage: (B, N) w^u_{t−1}.
    Returns:
        (B, N, W) M_{t−1} with row i* zeroed (gradients flow to the other rows).
    """
    least = previous_usage.detach().argmin(dim=-1, keepdim=True)  # (B, 1), first minimum on ties
    keep = memory.new_ones(previous_usage.shape).scatter(-1, least, 0.0)  # (B, N)
    return memory * keep.unsqueeze(-1)
