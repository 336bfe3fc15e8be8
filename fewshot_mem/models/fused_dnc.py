"""The DNC's access step (``DNC.access``) as a forward and a backward body with the backward
derived by hand, as ``fused_steps`` has MANN's and the NTM's; ``fused_run`` runs them over a whole
sequence as one autograd node, instead of about a hundred recorded operations a time step.

The forward is ``DNC.access``'s operations in its order (the functions of ``memory.dnc`` and
``memory.addressing``), so its outputs are the same bit for bit; the backward is the chain rule
written out, checked against autograd in float64 by ``fast_path_check``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..memory import addressing, dnc as dnc_memory
from .fused_steps import batched_product, content_norms, cosine_backward, softmax_backward, softplus_slope


def interface_parameters(interface: torch.Tensor, sizes: tuple[int, ...], read_heads: int, width: int):
    """The DNC's (B, I) interface vector split into the paper's quantities (``DNC`` documents them):
    read keys (B, R, W), read strengths (B, R), write key (B, 1, W), write strength (B, 1),
    erase (B, 1, W), write vector (B, 1, W), free gates (B, R), allocation gate (B,),
    write gate (B,), read modes (B, R, 3)."""
    b, r, w = interface.shape[0], read_heads, width
    (read_keys, read_strengths, write_key, write_strength, erase, write_vector,
     free_gates, allocation_gate, write_gate, read_modes) = interface.split(sizes, -1)
    return (read_keys.view(b, r, w), 1 + F.softplus(read_strengths), write_key.view(b, 1, w),
            1 + F.softplus(write_strength), torch.sigmoid(erase).view(b, 1, w), write_vector.view(b, 1, w),
            torch.sigmoid(free_gates), torch.sigmoid(allocation_gate)[:, 0], torch.sigmoid(write_gate)[:, 0],
            torch.softmax(read_modes.view(b, r, 3), dim=-1))


def dnc_forward(interface: torch.Tensor, sizes: tuple[int, ...], memory: torch.Tensor, read_w: torch.Tensor,
                write_w: torch.Tensor, usage: torch.Tensor, precedence: torch.Tensor, link: torch.Tensor,
                off_diagonal: torch.Tensor):
    """``DNC.access``: from the interface vector and (memory (B, N, W), read weights (B, R, N), write
    weights, usage, precedence (B, N) each, links (B, N, N)) to ((the same, updated), reads (B, R·W)),
    and the tensors for the backward. ``off_diagonal``: the links' (N, N) mask, 1 − I."""
    b, r, n = read_w.shape
    parameters = interface_parameters(interface, sizes, r, memory.shape[-1])
    (read_keys, read_strengths, write_key, write_strength, erase, write_vector,
     free_gates, allocation_gate, write_gate, read_modes) = parameters
    raw = interface.split(sizes, -1)
    retention = dnc_memory.retention(free_gates, read_w)  # (B, N)
    new_usage = dnc_memory.update_usage(usage, write_w, retention)
    sorted_usage, order, exclusive, sorted_allocation = dnc_memory.sorted_allocation_weights(new_usage)
    allocation = dnc_memory.to_slot_order(sorted_allocation, order)  # as allocation_weights
    write_cosine = addressing.cosine_similarity(memory, write_key)  # (B, 1, N)
    write_content = torch.softmax(write_strength.unsqueeze(-1) * write_cosine, dim=-1)[:, 0]  # content_weights
    new_write_w = dnc_memory.write_weights(write_content, allocation, allocation_gate, write_gate)  # (B, N)
    new_memory = addressing.erase_and_add(memory, new_write_w[:, None], erase, write_vector)
    new_link = dnc_memory.update_link(link, precedence, new_write_w, off_diagonal)
    new_precedence = dnc_memory.update_precedence(precedence, new_write_w)
    forward, backward = dnc_memory.directional_weights(new_link, read_w)  # (B, R, N) each
    read_cosine = addressing.cosine_similarity(new_memory, read_keys)  # (B, R, N)
    read_content = torch.softmax(read_strengths.unsqueeze(-1) * read_cosine, dim=-1)
    new_read_w = dnc_memory.read_weights(read_content, forward, backward, read_modes)
    reads = addressing.read(new_memory, new_read_w).flatten(1)
    outputs = (new_memory, new_read_w, new_write_w, new_usage, new_precedence, new_link, reads)
    saved = (*parameters, softplus_slope(raw[1]), softplus_slope(raw[3]), memory, read_w, write_w, usage, precedence,
             link, retention, sorted_usage, order, exclusive, sorted_allocation, allocation, write_cosine,
             write_content, new_write_w, new_memory, new_link, forward, backward, read_cosine, read_content, new_read_w)
    return outputs, saved


def _write_backward(saved, grad_memory, grad_write_w, grad_precedence, grad_link, off_diagonal):
    """From the gradients after the write (memory M_t, w^w_t, p_t, L_t) to those of M_{t−1}, p_{t−1},
    L_{t−1}, the write's gates, erase and write vectors, the write key's content weights and
    the allocation weights."""
    (erase, write_vector, allocation_gate, write_gate, memory, precedence, link, allocation, write_content,
     new_write_w) = saved
    # p_t = (1 − Σ w^w) p_{t−1} + w^w
    grad_write_w = grad_write_w + grad_precedence - (grad_precedence * precedence).sum(-1, keepdim=True)
    grad_previous_precedence = (1 - new_write_w.sum(-1, keepdim=True)) * grad_precedence
    # L_t = ((1 − w_i − w_j) L_{t−1} + w_i p_j) off the diagonal
    kept = grad_link * off_diagonal
    kept_link = kept * link
    grad_write_w = (grad_write_w - kept_link.sum(-1) - kept_link.sum(1)
                    + torch.bmm(kept, precedence.unsqueeze(-1)).squeeze(-1))
    grad_previous_precedence = grad_previous_precedence + torch.bmm(new_write_w.unsqueeze(1), kept).squeeze(1)
    grad_previous_link = kept * (1 - new_write_w.unsqueeze(-1) - new_write_w.unsqueeze(-2))
    # M_t = M_{t−1} ∘ (1 − w^w eᵀ) + w^w vᵀ
    column = new_write_w.unsqueeze(-1)  # (B, N, 1)
    grad_previous_memory = grad_memory * (1 - column * erase)
    grad_write_w = grad_write_w + (grad_memory * (write_vector - erase * memory)).sum(-1)
    weighted = grad_memory * column
    grad_erase, grad_write_vector = -(weighted * memory).sum(1), weighted.sum(1)  # (B, W)
    # w^w = g^w (g^a a + (1 − g^a) c^w)
    allocation_gate, write_gate = allocation_gate.unsqueeze(-1), write_gate.unsqueeze(-1)  # (B, 1)
    grad_write_gate = (grad_write_w * (allocation_gate * allocation + (1 - allocation_gate) * write_content)).sum(-1)
    grad_inner = write_gate * grad_write_w
    grad_allocation_gate = (grad_inner * (allocation - write_content)).sum(-1)
    return (grad_previous_memory, grad_previous_precedence, grad_previous_link, grad_erase, grad_write_vector,
            grad_write_gate, grad_allocation_gate, (1 - allocation_gate) * grad_inner, allocation_gate * grad_inner)


def _usage_backward(saved, grad_usage, grad_allocation):
    """From the gradients of u_t and of the allocation a_t to those of u_{t−1}, w^w_{t−1}, the free
    gates and w^r_{t−1} (through the retention ψ_t)."""
    free_gates, read_w, write_w, usage, retention, sorted_usage, order, exclusive, sorted_allocation = saved
    # a[φ_j] = (1 − u[φ_j]) Π_{i<j} u[φ_i]: ∂/∂u[φ_j] = −Π_{i<j} u[φ_i] + Σ_{k>j} a[φ_k] / u[φ_j]
    grad_sorted = grad_allocation.gather(-1, order)
    suffix = (grad_sorted * sorted_allocation).flip(-1).cumsum(-1).flip(-1)  # Σ_{k≥j}
    later = torch.cat([suffix[..., 1:], torch.zeros_like(suffix[..., :1])], dim=-1)  # Σ_{k>j}, without cancellation
    grad_sorted_usage = later / sorted_usage - grad_sorted * exclusive
    grad_usage = grad_usage + (1 - dnc_memory.EPSILON) * dnc_memory.to_slot_order(grad_sorted_usage, order)
    # u_t = (u_{t−1} + w^w_{t−1} − u_{t−1} w^w_{t−1}) ψ_t
    grad_before = grad_usage * retention
    grad_retention = grad_usage * (usage + write_w - usage * write_w)
    # ψ_t = Π_i (1 − f_i w^r_i): each head's factor times the product of the others (no division by zero)
    factors = 1 - free_gates.unsqueeze(-1) * read_w  # (B, R, N)
    ones = torch.ones_like(factors[:, :1])
    before = torch.cumprod(torch.cat([ones, factors[:, :-1]], 1), 1)
    after = torch.cumprod(torch.cat([ones, factors.flip(1)[:, :-1]], 1), 1).flip(1)
    grad_factors = grad_retention.unsqueeze(1) * before * after
    return (grad_before * (1 - write_w), grad_before * (1 - usage), -(grad_factors * read_w).sum(-1),
            -grad_factors * free_gates.unsqueeze(-1))


def dnc_backward(*saved_and_grads):
    """The gradients of ``dnc_forward``'s tensor inputs (interface, memory, read weights, write
    weights, usage, precedence, links) from those of its outputs; the last argument is the links'
    off-diagonal mask."""
    (read_keys, read_strengths, write_key, write_strength, erase, write_vector, free_gates, allocation_gate, write_gate,
     read_modes, read_slope, write_slope, memory, read_w, write_w, usage, precedence, link, retention, sorted_usage,
     order, exclusive, sorted_allocation, allocation, write_cosine, write_content, new_write_w, new_memory, new_link,
     forward, backward, read_cosine, read_content, new_read_w, grad_memory, grad_read_w, grad_write_w, grad_usage,
     grad_precedence, grad_link, grad_reads, off_diagonal) = saved_and_grads
    b, r, n = read_w.shape
    # reads r = w^r M_t; w^r = π_b b + π_c c^r + π_f f
    grad_reads = grad_reads.view(b, r, -1)
    grad_read_w = grad_read_w + torch.bmm(grad_reads, new_memory.transpose(1, 2))
    grad_memory = grad_memory + torch.bmm(new_read_w.transpose(1, 2), grad_reads)
    grad_modes = torch.einsum("brn,brmn->brm", grad_read_w, torch.stack([backward, read_content, forward], dim=2))
    grad_backward, grad_content, grad_forward = (read_modes[..., m : m + 1] * grad_read_w for m in range(3))
    grad_logits = softmax_backward(grad_content, read_content)
    grad_read_keys, grad_through_cosine = cosine_backward(
        read_strengths.unsqueeze(-1) * grad_logits, read_keys, new_memory, read_cosine,
        *content_norms(read_keys, new_memory))
    grad_memory = grad_memory + grad_through_cosine
    # f = L_t w^r_{t−1}, b = L_tᵀ w^r_{t−1}
    grad_previous_read_w = torch.bmm(grad_forward, new_link) + torch.bmm(grad_backward, new_link.transpose(1, 2))
    # The two outer products as loops when compiled (inductor fuses them with the write's backward
    # below); the products with the links stay BLAS calls: as loops they made the body 2x slower.
    grad_link = (grad_link + batched_product(grad_forward.transpose(1, 2), read_w)
                 + batched_product(read_w.transpose(1, 2), grad_backward))
    (grad_previous_memory, grad_previous_precedence, grad_previous_link, grad_erase, grad_write_vector,
     grad_write_gate, grad_allocation_gate, grad_write_content, grad_allocation) = _write_backward(
        (erase, write_vector, allocation_gate, write_gate, memory, precedence, link, allocation, write_content,
         new_write_w), grad_memory, grad_write_w, grad_precedence, grad_link, off_diagonal)
    # c^w = softmax(β^w K(k^w, M_{t−1}))
    grad_write_logits = softmax_backward(grad_write_content.unsqueeze(1), write_content.unsqueeze(1))  # (B, 1, N)
    grad_write_key, grad_through_cosine = cosine_backward(write_strength.unsqueeze(-1) * grad_write_logits, write_key,
                                                          memory, write_cosine, *content_norms(write_key, memory))
    grad_previous_usage, grad_previous_write_w, grad_free, grad_through_retention = _usage_backward(
        (free_gates, read_w, write_w, usage, retention, sorted_usage, order, exclusive, sorted_allocation),
        grad_usage, grad_allocation)
    allocation_gate, write_gate = allocation_gate.unsqueeze(-1), write_gate.unsqueeze(-1)
    grad_interface = torch.cat([
        grad_read_keys.flatten(1), (grad_logits * read_cosine).sum(-1) * read_slope, grad_write_key.flatten(1),
        (grad_write_logits * write_cosine).sum(-1) * write_slope, grad_erase * erase[:, 0] * (1 - erase[:, 0]),
        grad_write_vector, grad_free * free_gates * (1 - free_gates),
        grad_allocation_gate.unsqueeze(-1) * allocation_gate * (1 - allocation_gate),
        grad_write_gate.unsqueeze(-1) * write_gate * (1 - write_gate),
        softmax_backward(grad_modes, read_modes).flatten(1)], dim=-1)
    return (grad_interface, grad_previous_memory + grad_through_cosine, grad_previous_read_w + grad_through_retention,
            grad_previous_write_w, grad_previous_usage, grad_previous_precedence, grad_previous_link)
