"""Dynamic memory allocation and temporal links of the Differentiable Neural Computer
(Graves et al. 2016, "Hybrid computing using a neural network with dynamic external
memory", Nature 538, Methods). Pure functions over batched tensors.

Shapes: B batch, R read heads, N memory slots.
"""

from __future__ import annotations

import torch

EPSILON = 1e-6


def retention(free_gates: torch.Tensor, previous_read_w: torch.Tensor) -> torch.Tensor:
    """ψ_t = Π_i (1 − f^i_t w^{r,i}_{t−1}).

    Args:
        free_gates: (B, R) in [0, 1].
        previous_read_w: (B, R, N).
    Returns:
        (B, N) how much of each slot is retained.
    """
    return (1 - free_gates.unsqueeze(-1) * previous_read_w).prod(dim=1)


def update_usage(previous_usage: torch.Tensor, previous_write_w: torch.Tensor,
                 retention: torch.Tensor) -> torch.Tensor:
    """u_t = (u_{t−1} + w^w_{t−1} − u_{t−1} ∘ w^w_{t−1}) ∘ ψ_t.

    Args:
        previous_usage, previous_write_w, retention: (B, N).
    Returns:
        (B, N) usage in [0, 1].
    """
    return (previous_usage + previous_write_w - previous_usage * previous_write_w) * retention


def allocation_weights(usage: torch.Tensor) -> torch.Tensor:
    """a_t[φ_j] = (1 − u_t[φ_j]) Π_{i<j} u_t[φ_i], φ the slots sorted by ascending usage.

    Usage is first squeezed into [ε, 1] (u ← ε + (1 − ε) u) so that the
    product never multiplies by an exact zero, which would stop gradients.

    Args:
        usage: (B, N).
    Returns:
        (B, N) allocation weights, summing to at most 1.
    """
    usage = EPSILON + (1 - EPSILON) * usage
    sorted_usage, order = torch.sort(usage, dim=-1)  # φ: (B, N)
    ones = torch.ones_like(sorted_usage[:, :1])
    before = torch.cumprod(torch.cat([ones, sorted_usage[:, :-1]], dim=-1), dim=-1)  # exclusive product
    sorted_allocation = (1 - sorted_usage) * before
    return torch.zeros_like(usage).scatter(-1, order, sorted_allocation)


def write_weights(content_w: torch.Tensor, allocation_w: torch.Tensor, allocation_gate: torch.Tensor,
                  write_gate: torch.Tensor) -> torch.Tensor:
    """w^w_t = g^w_t (g^a_t a_t + (1 − g^a_t) c^w_t).

    Args:
        content_w, allocation_w: (B, N).
        allocation_gate, write_gate: (B,) in [0, 1].
    Returns:
        (B, N).
    """
    allocation_gate, write_gate = allocation_gate.unsqueeze(-1), write_gate.unsqueeze(-1)
    return write_gate * (allocation_gate * allocation_w + (1 - allocation_gate) * content_w)


def update_precedence(previous_precedence: torch.Tensor, write_w: torch.Tensor) -> torch.Tensor:
    """p_t = (1 − Σ_i w^w_t[i]) p_{t−1} + w^w_t.

    Args:
        previous_precedence, write_w: (B, N).
    Returns:
        (B, N).
    """
    return (1 - write_w.sum(dim=-1, keepdim=True)) * previous_precedence + write_w


def update_link(previous_link: torch.Tensor, previous_precedence: torch.Tensor,
                write_w: torch.Tensor) -> torch.Tensor:
    """L_t[i, j] = (1 − w[i] − w[j]) L_{t−1}[i, j] + w[i] p_{t−1}[j], with L_t[i, i] = 0.

    Args:
        previous_link: (B, N, N).
        previous_precedence, write_w: (B, N).
    Returns:
        (B, N, N); L[i, j] is how much slot i was written right after slot j.
    """
    w_i, w_j = write_w.unsqueeze(-1), write_w.unsqueeze(-2)  # (B, N, 1), (B, 1, N)
    link = (1 - w_i - w_j) * previous_link + w_i * previous_precedence.unsqueeze(-2)
    n = write_w.shape[-1]
    return link * (1 - torch.eye(n, dtype=link.dtype, device=link.device))


def directional_weights(link: torch.Tensor, previous_read_w: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """f^i_t = L_t w^{r,i}_{t−1} (forward), b^i_t = L_tᵀ w^{r,i}_{t−1} (backward).

    Args:
        link: (B, N, N).
        previous_read_w: (B, R, N).
    Returns:
        forward, backward: (B, R, N) each.
    """
    forward = torch.einsum("bij,brj->bri", link, previous_read_w)
    backward = torch.einsum("bji,brj->bri", link, previous_read_w)
    return forward, backward


def read_weights(content_w: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor,
                 read_modes: torch.Tensor) -> torch.Tensor:
    """w^{r,i}_t = π^i[0] b^i_t + π^i[1] c^{r,i}_t + π^i[2] f^i_t.

    Args:
        content_w, forward, backward: (B, R, N).
        read_modes: (B, R, 3) a distribution over (backward, content, forward).
    Returns:
        (B, R, N).
    """
    modes = read_modes.unsqueeze(-1)  # (B, R, 3, 1)
    return modes[:, :, 0] * backward + modes[:, :, 1] * content_w + modes[:, :, 2] * forward
