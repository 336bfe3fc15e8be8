"""Every addressing function against a hand-computed case, plus shapes, batching and gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from fewshot_mem.memory import addressing, dnc, lru

T = torch.tensor


def close(actual, expected, atol=1e-5):
    assert torch.allclose(actual, T(expected, dtype=actual.dtype), atol=atol), (actual, expected)


# ------------------------------------------------------------------ content and location (NTM)

MEMORY = T([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # (B=1, N=3, W=2)


def test_cosine_similarity_by_hand():
    # k = (1, 0): cos with (1,0) = 1, with (0,1) = 0, with (1,1) = 1/√2
    close(addressing.cosine_similarity(MEMORY, T([[[1.0, 0.0]]])), [[[1.0, 0.0, 1 / math.sqrt(2)]]])


def test_content_weights_by_hand():
    # β = 2: softmax(2, 0, 2/√2) = (e², 1, e^1.4142) / 12.5023 = (0.59102, 0.07999, 0.32900)
    weights = addressing.content_weights(MEMORY, T([[[1.0, 0.0]]]), T([[2.0]]))
    close(weights, [[[0.59102, 0.07999, 0.32900]]])


def test_content_weights_of_zero_key_and_zero_rows_are_finite_with_gradients():
    memory = torch.zeros(1, 3, 2, requires_grad=True)
    keys = torch.zeros(1, 1, 2, requires_grad=True)
    weights = addressing.content_weights(memory, keys, T([[5.0]]))
    close(weights, [[[1 / 3, 1 / 3, 1 / 3]]])
    weights[0, 0, 0].backward()
    assert torch.isfinite(memory.grad).all() and torch.isfinite(keys.grad).all()


def test_interpolate_by_hand():
    # 0.25 (1, 0, 0) + 0.75 (0, 0, 1)
    close(addressing.interpolate(T([[[1.0, 0, 0]]]), T([[[0, 0, 1.0]]]), T([[0.25]])), [[[0.25, 0, 0.75]]])


def test_circular_shift_by_hand():
    # w = (.5, .3, .2, 0), s(−1, 0, +1) = (.1, .6, .3); w̃(i) = Σ_j w(j) s(i − j):
    # w̃0 = .5·.6 + .3·.1 + 0·.3 = .33   w̃1 = .3·.6 + .5·.3 + .2·.1 = .35
    # w̃2 = .2·.6 + .3·.3 + 0·.1 = .21   w̃3 = 0·.6 + .2·.3 + .5·.1 = .11
    shifted = addressing.circular_shift(T([[[0.5, 0.3, 0.2, 0.0]]]), T([[[0.1, 0.6, 0.3]]]))
    close(shifted, [[[0.33, 0.35, 0.21, 0.11]]])


def test_circular_shift_identity_and_roll():
    weights = torch.softmax(torch.randn(2, 3, 5), dim=-1)
    close(addressing.circular_shift(weights, T([0.0, 1.0, 0.0]).expand(2, 3, 3)), weights.tolist())
    rolled = addressing.circular_shift(weights, T([0.0, 0.0, 1.0]).expand(2, 3, 3))
    close(rolled, torch.roll(weights, 1, dims=-1).tolist())


def test_sharpen_by_hand():
    # γ = 2: (.25, .09, .04) / .38
    close(addressing.sharpen(T([[[0.5, 0.3, 0.2]]]), T([[2.0]])), [[[0.65789, 0.23684, 0.10526]]], atol=1e-4)
    weights = torch.softmax(torch.randn(2, 2, 4), dim=-1)
    close(addressing.sharpen(weights, torch.ones(2, 2)), weights.tolist(), atol=1e-5)


def test_read_by_hand():
    memory = T([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    # head 1: .5 (1,2) + .5 (3,4) = (2, 3); head 2: (5, 6)
    close(addressing.read(memory, T([[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]])), [[[2.0, 3.0], [5.0, 6.0]]])


def test_erase_and_add_one_head_by_hand():
    # row 0: (1·(1−1), 2·(1−.5)) + (10, 20) = (10, 21); row 1 untouched
    memory = T([[[1.0, 2.0], [3.0, 4.0]]])
    written = addressing.erase_and_add(memory, T([[[1.0, 0.0]]]), T([[[1.0, 0.5]]]), T([[[10.0, 20.0]]]))
    close(written, [[[10.0, 21.0], [3.0, 4.0]]])


def test_erase_and_add_two_heads_by_hand():
    # keep row 0 = (1 − .5·(1,0))∘(1 − 1·(0,1)) = (.5, 0); keep row 1 = (.5, 1)
    # adds: row 0 = .5·(1,1) + 1·(2,2) = (2.5, 2.5); row 1 = .5·(1,1)
    # M: row 0 = (.5, 0) + (2.5, 2.5) = (3, 2.5); row 1 = (1.5, 4) + (.5, .5) = (2, 4.5)
    memory = T([[[1.0, 2.0], [3.0, 4.0]]])
    weights = T([[[0.5, 0.5], [1.0, 0.0]]])
    erase = T([[[1.0, 0.0], [0.0, 1.0]]])
    add = T([[[1.0, 1.0], [2.0, 2.0]]])
    close(addressing.erase_and_add(memory, weights, erase, add), [[[3.0, 2.5], [2.0, 4.5]]])
    swapped = addressing.erase_and_add(memory, weights.flip(1), erase.flip(1), add.flip(1))
    close(swapped, [[[3.0, 2.5], [2.0, 4.5]]])  # head order does not matter


def test_add_write_by_hand():
    # (.25, .75)ᵀ (4, 8)
    close(addressing.add_write(torch.zeros(1, 2, 2), T([[[0.25, 0.75]]]), T([[[4.0, 8.0]]])), [[[1.0, 2.0], [3.0, 6.0]]])


def test_ntm_address_composes_the_steps():
    torch.manual_seed(0)
    memory, keys = torch.randn(2, 6, 4), torch.randn(2, 3, 4)
    beta, gate, gamma = torch.rand(2, 3) * 5, torch.rand(2, 3), 1 + torch.rand(2, 3)
    shift, previous = torch.softmax(torch.randn(2, 3, 3), -1), torch.softmax(torch.randn(2, 3, 6), -1)
    expected = addressing.sharpen(addressing.circular_shift(addressing.interpolate(
        addressing.content_weights(memory, keys, beta), previous, gate), shift), gamma)
    weights = addressing.ntm_address(memory, keys, beta, gate, shift, gamma, previous)
    assert weights.shape == (2, 3, 6)
    assert torch.allclose(weights, expected)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3))


# ------------------------------------------------------------------ LRU access (MANN)

def test_lru_usage_by_hand():
    # .95 (1, .5, 0) + (0, 1, 0) + (.2, 0, .8) = (1.15, 1.475, .8)
    usage = lru.update_usage(T([[1.0, 0.5, 0.0]]), T([[[0.0, 1.0, 0.0]]]), T([[[0.2, 0.0, 0.8]]]), 0.95)
    close(usage, [[1.15, 1.475, 0.8]])


def test_least_used_weights_mark_the_n_smallest():
    close(lru.least_used_weights(T([[0.3, 0.1, 0.5, 0.2]]), 2), [[0.0, 1.0, 0.0, 1.0]])
    close(lru.least_used_weights(T([[0.3, 0.1, 0.5, 0.2], [0.0, 0.9, 0.8, 0.7]]), 1),
          [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])


def test_lru_write_weights_by_hand():
    # σ(ln 3) = .75: .75 (0, 1, 0, 0) + .25 (1, 0, 0, 1)
    weights = lru.lru_write_weights(T([[[0.0, 1.0, 0.0, 0.0]]]), T([[1.0, 0.0, 0.0, 1.0]]), T([[math.log(3)]]))
    close(weights, [[[0.25, 0.75, 0.0, 0.25]]])


def test_zero_least_used_clears_exactly_that_slot():
    memory = T([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    cleared = lru.zero_least_used(memory, T([[0.5, 0.1, 0.9], [0.0, 0.1, 0.9]]))
    close(cleared, [[[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]], [[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]])


# ------------------------------------------------------------------ DNC

def test_retention_by_hand():
    # (1 − .5 (1,0,0)) ∘ (1 − 1 (0,.5,.5)) = (.5, 1, 1) ∘ (1, .5, .5)
    close(dnc.retention(T([[0.5, 1.0]]), T([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]])), [[0.5, 0.5, 0.5]])


def test_dnc_usage_by_hand():
    # (u + w − u∘w) = (.75, 1, 1); ∘ ψ (1, 1, .5)
    close(dnc.update_usage(T([[0.5, 0.0, 1.0]]), T([[0.5, 1.0, 0.0]]), T([[1.0, 1.0, 0.5]])), [[0.75, 1.0, 0.5]])


def test_allocation_by_hand():
    # sorted usage: .2 (slot 1), .5 (slot 0), .9 (slot 2)
    # a1 = 1 − .2 = .8; a0 = (1 − .5)·.2 = .1; a2 = (1 − .9)·.2·.5 = .01
    allocation = dnc.allocation_weights(T([[0.5, 0.2, 0.9]]))
    close(allocation, [[0.1, 0.8, 0.01]])
    assert allocation.argmax() == 1 and float(allocation.sum()) <= 1


def test_dnc_write_weights_by_hand():
    # .5 (.25 (1,0,0) + .75 (.2,.8,0)) = .5 (.4, .6, 0)
    close(dnc.write_weights(T([[0.2, 0.8, 0.0]]), T([[1.0, 0.0, 0.0]]), T([0.25]), T([0.5])), [[0.2, 0.3, 0.0]])


def test_precedence_by_hand():
    # (1 − .75)(.5, .5, 0) + (0, .25, .5)
    close(dnc.update_precedence(T([[0.5, 0.5, 0.0]]), T([[0.0, 0.25, 0.5]])), [[0.125, 0.375, 0.5]])


def test_links_record_write_order_and_directions_follow_them():
    # write slot 1 after slot 0, then slot 2 after slot 1
    link = dnc.update_link(torch.zeros(1, 3, 3), T([[1.0, 0.0, 0.0]]), T([[0.0, 1.0, 0.0]]))
    close(link, [[[0, 0, 0], [1, 0, 0], [0, 0, 0]]])
    precedence = dnc.update_precedence(T([[1.0, 0.0, 0.0]]), T([[0.0, 1.0, 0.0]]))
    close(precedence, [[0.0, 1.0, 0.0]])
    link = dnc.update_link(link, precedence, T([[0.0, 0.0, 1.0]]))
    close(link, [[[0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    forward, backward = dnc.directional_weights(link, T([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]))
    close(forward, [[[0, 1, 0], [0, 0, 1]]])  # after slot 0 came slot 1; after slot 1, slot 2
    close(backward, [[[0, 0, 0], [1, 0, 0]]])  # before slot 1 came slot 0


def test_link_diagonal_stays_zero():
    torch.manual_seed(0)
    link = torch.rand(2, 5, 5)
    updated = dnc.update_link(link, torch.softmax(torch.randn(2, 5), -1), torch.softmax(torch.randn(2, 5), -1))
    assert torch.equal(torch.diagonal(updated, dim1=-2, dim2=-1), torch.zeros(2, 5))


def test_dnc_read_weights_by_hand():
    # .5 (1,0,0) + .25 (.2,.8,0) + .25 (0,0,1)
    weights = dnc.read_weights(T([[[0.2, 0.8, 0.0]]]), T([[[0.0, 0.0, 1.0]]]), T([[[1.0, 0.0, 0.0]]]),
                               T([[[0.5, 0.25, 0.25]]]))
    close(weights, [[[0.55, 0.2, 0.25]]])


# ------------------------------------------------------------------ batching and gradients

def test_batch_elements_are_independent():
    torch.manual_seed(1)
    memory, keys, beta = torch.randn(3, 5, 4), torch.randn(3, 2, 4), torch.rand(3, 2)
    together = addressing.content_weights(memory, keys, beta)
    for b in range(3):
        assert torch.allclose(together[b : b + 1], addressing.content_weights(memory[b : b + 1], keys[b : b + 1],
                                                                               beta[b : b + 1]))
    usage = torch.rand(3, 5)
    together = dnc.allocation_weights(usage)
    for b in range(3):
        assert torch.allclose(together[b : b + 1], dnc.allocation_weights(usage[b : b + 1]))


def double(*shape, softmax=False, positive=False):
    value = torch.randn(*shape, dtype=torch.float64)
    if softmax:
        value = torch.softmax(value, -1)
    if positive:
        value = value.abs() + 0.5
    return value.requires_grad_()


GRADIENT_CASES = {
    "content_weights": lambda: (addressing.content_weights, (double(2, 4, 3), double(2, 2, 3), double(2, 2, positive=True))),
    "circular_shift": lambda: (addressing.circular_shift, (double(2, 2, 4, softmax=True), double(2, 2, 3, softmax=True))),
    "sharpen": lambda: (addressing.sharpen, (double(2, 2, 4, softmax=True), double(2, 2, positive=True) + 1)),
    "erase_and_add": lambda: (addressing.erase_and_add, (double(2, 4, 3), double(2, 2, 4, softmax=True),
                                                         torch.sigmoid(double(2, 2, 3)), double(2, 2, 3))),
    "retention": lambda: (dnc.retention, (torch.sigmoid(double(2, 3)), double(2, 3, 4, softmax=True))),
    "allocation_weights": lambda: (dnc.allocation_weights, (T([[0.1, 0.5, 0.3, 0.8]], dtype=torch.float64).requires_grad_(),)),
    "update_link": lambda: (dnc.update_link, (double(2, 4, 4), double(2, 4, softmax=True), double(2, 4, softmax=True))),
    "read_weights": lambda: (dnc.read_weights, (double(2, 2, 4, softmax=True), double(2, 2, 4), double(2, 2, 4),
                                                double(2, 2, 3, softmax=True))),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradients_match_finite_differences(name):
    torch.manual_seed(0)
    function, inputs = GRADIENT_CASES[name]()
    inputs = tuple(x.detach().requires_grad_() for x in inputs)
    assert gradcheck(function, inputs, eps=1e-6, atol=1e-5)
