"""Dynamic memory allocation and temporal links of the Differentiable Neural Computer
(Graves et al. 2016, "Hybrid computing using a neural network with dynamic external
memory", Nature 538, Methods). Pure functions over batched tensors.

Shapes: B batch, R read heads, Wh write heads, N memory slots.
"""

from __future__ import annotations

import torch

__all__ = [
    "EPSILON",
    "allocation_weights",
    "directional_weights",
    "off_diagonal_mask",
    "read_weights",
    "retention",
    "sorted_allocation_weights",
    "to_slot_order",
    "update_link",
    "update_precedence",
    "update_usage",
    "write_weights",
]

EPSILON = 1e-6


def retention(free_gates: torch.Tensor, previous_read_w: torch.Tensor) -> torch.Tensor:
    """ψ_t = Π_i (1 − f^i_t w^{r,i}_{t−1}), the product over read heads i.

    Args:
        free_gates: (B, R) free gates f in [0, 1].
        previous_read_w: (B, R, N) w^r_{t−1}.
    Returns:
        (B, N) ψ_t, how much of each slot is retained.
    """
    return (1 - free_gates.unsqueeze(-1) * previous_read_w).prod(dim=1)


def update_usage(previous_usage: torch.Tensor, previous_write_w: torch.Tensor,
                 retention: torch.Tensor) -> torch.Tensor:
    """u_t = (u_{t−1} + w^w_{t−1} − u_{t−1} ∘ w^w_{t−1}) ∘ ψ_t.

    With several write heads, w^w_{t−1} is first combined into the fraction of
    each slot written by any head, w^w = 1 − Π_h (1 − w^w_h).

    Args:
        previous_usage: (B, N) u_{t−1}.
        previous_write_w: (B, N) or (B, Wh, N) w^w_{t−1}.
        retention: (B, N) ψ_t.
    Returns:
        (B, N) u_t, in [0, 1] when the inputs are.
    """
    if previous_write_w.dim() == 3:
        previous_write_w = 1 - (1 - previous_write_w).prod(dim=1)
    return (previous_usage + previous_write_w - previous_usage * previous_write_w) * retention


def allocation_weights(usage: torch.Tensor) -> torch.Tensor:
    """a_t[φ_t[j]] = (1 − u_t[φ_t[j]]) Π_{i<j} u_t[φ_t[i]], φ_t the slots sorted by ascending usage.

    Usage is first squeezed into [ε, 1] (u ← ε + (1 − ε) u), so the exclusive
    product never multiplies by an exact zero: the gradient with respect to
    every slot's usage stays non-zero and finite. Gradients flow through the
    sorted values (not through the sort order), as in the DNC paper. Where two
    usages tie the sort order can flip, so the allocation jumps there; ties
    among slots are broken by ``torch.sort``.

    Args:
        usage: (B, N) u_t in [0, 1].
    Returns:
        (B, N) allocation weights, non-negative and summing to 1 − Π_i u_t[i] ≤ 1.
    """
    _, order, _, sorted_allocation = sorted_allocation_weights(usage)
    return to_slot_order(sorted_allocation, order)


def to_slot_order(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """values[j] of the slot order[j], put back at that slot: out[order[j]] = values[j].

    Args:
        values: (B, N) in sorted order.
        order: (B, N) the slots, as ``torch.sort`` returns them.
    Returns:
        (B, N) in slot order.
    """
    return torch.zeros_like(values).scatter(-1, order, values)


def sorted_allocation_weights(usage: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``allocation_weights`` in sorted order, with its parts (for a hand-derived backward).

    Args:
        usage: (B, N) u_t in [0, 1].
    Returns:
        (B, N) each: the squeezed usage sorted ascending u[φ], the order φ, the exclusive
        products Π_{i<j} u[φ[i]], and the allocation (1 − u[φ[j]]) Π_{i<j} u[φ[i]].
    """
    usage = EPSILON + (1 - EPSILON) * usage
    sorted_usage, order = torch.sort(usage, dim=-1)  # (B, N) each; order = φ_t
    exclusive = torch.cumprod(torch.cat([torch.ones_like(sorted_usage[..., :1]), sorted_usage[..., :-1]], dim=-1),
                              dim=-1)  # Π_{i<j} u[φ[i]]
    return sorted_usage, order, exclusive, (1 - sorted_usage) * exclusive


def write_weights(content_w: torch.Tensor, allocation_w: torch.Tensor, allocation_gate: torch.Tensor,
                  write_gate: torch.Tensor) -> torch.Tensor:
    """w^w_t = g^w_t (g^a_t a_t + (1 − g^a_t) c^w_t).

    Args:
        content_w: (B, N) c^w_t, the write key's content weights.
        allocation_w: (B, N) a_t.
        allocation_gate: (B,) g^a in [0, 1].
        write_gate: (B,) g^w in [0, 1].
    Returns:
        (B, N) w^w_t.
    """
    allocation_gate, write_gate = allocation_gate.unsqueeze(-1), write_gate.unsqueeze(-1)  # (B, 1)
    return write_gate * (allocation_gate * allocation_w + (1 - allocation_gate) * content_w)


def update_precedence(previous_precedence: torch.Tensor, write_w: torch.Tensor) -> torch.Tensor:
    """p_t = (1 − Σ_i w^w_t[i]) p_{t−1} + w^w_t.

    Args:
        previous_precedence: (B, N) p_{t−1}.
        write_w: (B, N) w^w_t.
    Returns:
        (B, N) p_t.
    """
    return (1 - write_w.sum(dim=-1, keepdim=True)) * previous_precedence + write_w


def update_link(previous_link: torch.Tensor, previous_precedence: torch.Tensor,
                write_w: torch.Tensor, off_diagonal: torch.Tensor | None = None) -> torch.Tensor:
    """L_t[i, j] = (1 − w^w_t[i] − w^w_t[j]) L_{t−1}[i, j] + w^w_t[i] p_{t−1}[j], and L_t[i, i] = 0.

    Args:
        previous_link: (B, N, N) L_{t−1}.
        previous_precedence: (B, N) p_{t−1} (the precedence before this write).
        write_w: (B, N) w^w_t.
        off_diagonal: (N, N) 1 − I, or None to build it here. A compiled loop passes it in:
            built inside a compiled body, the identity is an index comparison per element,
            which made the update about 15× slower than multiplying by a stored mask.
    Returns:
        (B, N, N) L_t; L_t[i, j] is the degree to which slot i was written
        right after slot j.
    """
    w_i, w_j = write_w.unsqueeze(-1), write_w.unsqueeze(-2)  # (B, N, 1), (B, 1, N)
    link = (1 - w_i - w_j) * previous_link + w_i * previous_precedence.unsqueeze(-2)
    if off_diagonal is None:
        off_diagonal = off_diagonal_mask(write_w.shape[-1], link)
    return link * off_diagonal


def off_diagonal_mask(n: int, like: torch.Tensor) -> torch.Tensor:
    """(N, N) 1 − I, with ``like``'s dtype and device: the links' mask (no slot links to itself)."""
    return 1 - torch.eye(n, dtype=like.dtype, device=like.device)


def directional_weights(link: torch.Tensor, previous_read_w: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """f^i_t = L_t w^{r,i}_{t−1} (forward), b^i_t = L_tᵀ w^{r,i}_{t−1} (backward).

    Args:
        link: (B, N, N) L_t.
        previous_read_w: (B, R, N) w^r_{t−1}.
    Returns:
        forward, backward: (B, R, N) each.
    """
    forward = torch.einsum("bij,brj->bri", link, previous_read_w)  # f[i] = Σ_j L[i, j] w[j]
    backward = torch.einsum("bji,brj->bri", link, previous_read_w)  # b[i] = Σ_j L[j, i] w[j]
    return forward, backward


def read_weights(content_w: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor,
                 read_modes: torch.Tensor) -> torch.Tensor:
    """w^{r,i}_t = π^i_t[0] b^i_t + π^i_t[1] c^{r,i}_t + π^i_t[2] f^i_t.

    Mode order along the last axis of ``read_modes``: (backward, content, forward),
    as in the paper.

    Args:
        content_w: (B, R, N) c^r_t, the read keys' content weights.
        forward: (B, R, N) f_t.
        backward: (B, R, N) b_t.
        read_modes: (B, R, 3) π_t, a distribution over (backward, content, forward).
    Returns:
        (B, R, N) w^r_t.
    """
    directions = torch.stack([backward, content_w, forward], dim=2)  # (B, R, 3, N)
    return torch.einsum("brm,brmn->brn", read_modes, directions)
