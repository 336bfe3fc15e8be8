"""The memory-addressing functions: each against a case worked out by hand, then shapes,
dtypes, devices, batch independence and gradients for all of them."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from fewshot_mem.memory import addressing, dnc, lru

T = torch.tensor


def close(actual: torch.Tensor, expected, atol: float = 1e-5) -> None:
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected, atol=atol), (actual, expected)


# ------------------------------------------------------------------ content addressing (NTM)

MEMORY = T([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # (B=1, N=3, W=2)


def test_cosine_similarity_by_hand():
    # k1 = (1, 0): cos with (1,0) = 1, with (0,1) = 0, with (1,1) = 1/√2 = .70711
    # k2 = (3, 4), ‖k2‖ = 5: cos with (1,0) = 3/5, (0,1) = 4/5, (1,1) = 7/(5√2) = .98995
    similarity = addressing.cosine_similarity(MEMORY, T([[[1.0, 0.0], [3.0, 4.0]]]))
    close(similarity, [[[1.0, 0.0, 0.70711], [0.6, 0.8, 0.98995]]])


def test_content_weights_by_hand():
    # β = 2: softmax(2·1, 2·0, 2·.70711) = (e², 1, e^1.41421) / (7.38906 + 1 + 4.11325 = 12.50231)
    #      = (.59102, .07999, .32900)
    # β = 0: uniform (1/3, 1/3, 1/3) whatever the key
    weights = addressing.content_weights(MEMORY, T([[[1.0, 0.0], [3.0, 4.0]]]), T([[2.0, 0.0]]))
    close(weights, [[[0.59102, 0.07999, 0.32900], [1 / 3, 1 / 3, 1 / 3]]])


@pytest.mark.parametrize("case", ["zero key", "zero row", "both zero"])
def test_content_weights_at_zero_vectors_have_finite_values_and_gradients(case):
    memory = T([[[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]) if case == "zero row" else MEMORY.clone()
    keys = T([[[1.0, 0.0]]]) if case == "zero row" else torch.zeros(1, 1, 2)
    if case == "both zero":
        memory = torch.zeros(1, 3, 2)
    memory.requires_grad_()
    keys.requires_grad_()
    similarity = addressing.cosine_similarity(memory, keys)
    weights = addressing.content_weights(memory, keys, T([[5.0]]))
    if case == "zero row":
        # cos = (0, 0, 1/√2): the zero row scores exactly 0
        close(similarity, [[[0.0, 0.0, 0.70711]]])
    else:
        close(similarity, [[[0.0, 0.0, 0.0]]])
        close(weights, [[[1 / 3, 1 / 3, 1 / 3]]])
    (weights[0, 0, 0] + similarity.sum()).backward()
    assert torch.isfinite(memory.grad).all() and torch.isfinite(keys.grad).all()
    if case == "zero key":
        # moving a zero key towards a row raises that row's similarity: the gradient is not just 0
        assert keys.grad.abs().sum() > 0


# ------------------------------------------------------------------ location addressing (NTM)

def test_interpolate_by_hand():
    # head 1: .25 (1, 0, 0) + .75 (0, 0, 1); head 2: g = 1 keeps the content weights
    content = T([[[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]]])
    previous = T([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    close(addressing.interpolate(content, previous, T([[0.25, 1.0]])), [[[0.25, 0.0, 0.75], [0.2, 0.3, 0.5]]])


def test_circular_shift_by_hand():
    # w = (.5, .3, .2, 0), s over offsets (−1, 0, +1) = (.1, .6, .3); w̃(i) = Σ_j w(j) s(i − j):
    # w̃0 = w0·s0 + w1·s(−1) + w3·s(+1) = .5·.6 + .3·.1 + 0·.3 = .33
    # w̃1 = w1·s0 + w0·s(+1) + w2·s(−1) = .3·.6 + .5·.3 + .2·.1 = .35
    # w̃2 = w2·s0 + w1·s(+1) + w3·s(−1) = .2·.6 + .3·.3 + 0·.1 = .21
    # w̃3 = w3·s0 + w2·s(+1) + w0·s(−1) = 0·.6 + .2·.3 + .5·.1 = .11
    shifted = addressing.circular_shift(T([[[0.5, 0.3, 0.2, 0.0]]]), T([[[0.1, 0.6, 0.3]]]))
    close(shifted, [[[0.33, 0.35, 0.21, 0.11]]])


def test_shift_sources_by_hand():
    """N = 4, offsets −1, 0, +1: slot i receives from i + 1, i, i − 1; the reverse direction sends back."""
    assert addressing.shift_sources(4, 3).tolist() == [[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2]]
    assert addressing.shift_sources(4, 3, direction=-1).tolist() == [[3, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 0]]


def test_circular_shift_one_hot_offsets_are_identity_and_rolls():
    torch.manual_seed(0)
    weights = torch.softmax(torch.randn(2, 3, 5), dim=-1)  # B = 2, H = 3, N = 5
    close(addressing.circular_shift(weights, T([0.0, 1.0, 0.0]).expand(2, 3, 3)), weights)
    close(addressing.circular_shift(weights, T([0.0, 0.0, 1.0]).expand(2, 3, 3)), torch.roll(weights, 1, -1))
    close(addressing.circular_shift(weights, T([1.0, 0.0, 0.0]).expand(2, 3, 3)), torch.roll(weights, -1, -1))
    # S = 5: offsets −2..+2
    close(addressing.circular_shift(weights, T([0.0, 0.0, 0.0, 0.0, 1.0]).expand(2, 3, 5)),
          torch.roll(weights, 2, -1))
    close(addressing.circular_shift(weights, T([1.0, 0.0, 0.0, 0.0, 0.0]).expand(2, 3, 5)),
          torch.roll(weights, -2, -1))
    # a one-hot weighting at slot 0 shifted by +1 lands on slot 1
    close(addressing.circular_shift(T([[[1.0, 0.0, 0.0, 0.0]]]), T([[[0.0, 0.0, 1.0]]])), [[[0.0, 1.0, 0.0, 0.0]]])


def test_sharpen_by_hand_and_gamma_one_is_identity():
    # γ = 2: (.5², .3², .2²) / (.25 + .09 + .04) = (.25, .09, .04) / .38 = (.65789, .23684, .10526)
    close(addressing.sharpen(T([[[0.5, 0.3, 0.2]]]), T([[2.0]])), [[[0.65789, 0.23684, 0.10526]]], atol=1e-4)
    torch.manual_seed(0)
    weights = torch.softmax(torch.randn(2, 2, 4), dim=-1)
    close(addressing.sharpen(weights, torch.ones(2, 2)), weights)


def test_sharpen_of_an_all_zero_weighting_is_uniform_not_nan():
    # a zero previous weighting with gate 0 reaches sharpen as all zeros: ε^γ / (N ε^γ) = 1/N
    zeros = torch.zeros(1, 1, 4, requires_grad=True)
    gamma = T([[2.0]], requires_grad=True)
    sharpened = addressing.sharpen(zeros, gamma)
    close(sharpened, [[[0.25, 0.25, 0.25, 0.25]]])
    sharpened[0, 0, 0].backward()
    assert torch.isfinite(zeros.grad).all() and torch.isfinite(gamma.grad).all()


def test_ntm_address_by_hand():
    # β = 0 → w^c = (1/3, 1/3, 1/3); g = .5 with w_{t−1} = (1, 0, 0) → w^g = (2/3, 1/6, 1/6)
    # shift +1 → (1/6, 2/3, 1/6); γ = 2 → (1, 16, 1)/36 ÷ 18/36 = (1/18, 16/18, 1/18)
    weights = addressing.ntm_address(MEMORY, T([[[1.0, 0.0]]]), T([[0.0]]), T([[0.5]]), T([[[0.0, 0.0, 1.0]]]),
                                     T([[2.0]]), T([[[1.0, 0.0, 0.0]]]))
    close(weights, [[[1 / 18, 16 / 18, 1 / 18]]])


def test_ntm_address_composes_the_steps():
    torch.manual_seed(0)
    memory, keys = torch.randn(2, 6, 4), torch.randn(2, 3, 4)
    beta, gate, gamma = torch.rand(2, 3) * 5, torch.rand(2, 3), 1 + torch.rand(2, 3)
    shift, previous = torch.softmax(torch.randn(2, 3, 3), -1), torch.softmax(torch.randn(2, 3, 6), -1)
    expected = addressing.sharpen(addressing.circular_shift(addressing.interpolate(
        addressing.content_weights(memory, keys, beta), previous, gate), shift), gamma)
    weights = addressing.ntm_address(memory, keys, beta, gate, shift, gamma, previous)
    close(weights, expected)
    close(weights.sum(-1), torch.ones(2, 3))


def test_ntm_address_gradients_are_finite_from_one_hot_previous_weights():
    # zeros in the weights feed sharpen's w^γ: the γ-gradient (∝ log w) must stay finite
    gamma = T([[3.0]], requires_grad=True)
    keys = T([[[1.0, 0.0]]], requires_grad=True)
    weights = addressing.ntm_address(torch.zeros(1, 3, 2), keys, T([[1.0]]), T([[0.0]]), T([[[0.0, 1.0, 0.0]]]),
                                     gamma, T([[[1.0, 0.0, 0.0]]]))
    weights[0, 0, 0].backward()
    assert torch.isfinite(gamma.grad).all() and torch.isfinite(keys.grad).all()


# ------------------------------------------------------------------ reads and writes

def test_read_by_hand():
    memory = T([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    # head 1: .5 (1,2) + .5 (3,4) = (2, 3); head 2: 1 (5, 6); head 3: .2 (1,2) + .8 (5,6) = (4.2, 5.2)
    weights = T([[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.0, 0.8]]])
    close(addressing.read(memory, weights), [[[2.0, 3.0], [5.0, 6.0], [4.2, 5.2]]])


def test_erase_and_add_one_head_by_hand():
    # w = (1, .5): row 0 = (1·(1 − 1·1), 2·(1 − 1·.5)) + 1·(10, 20) = (10, 21)
    #              row 1 = (3·(1 − .5·1), 4·(1 − .5·.5)) + .5·(10, 20) = (1.5 + 5, 3 + 10) = (6.5, 13)
    memory = T([[[1.0, 2.0], [3.0, 4.0]]])
    written = addressing.erase_and_add(memory, T([[[1.0, 0.5]]]), T([[[1.0, 0.5]]]), T([[[10.0, 20.0]]]))
    close(written, [[[10.0, 21.0], [6.5, 13.0]]])


def test_erase_and_add_two_heads_by_hand():
    # w_1 = (.5, .5), e_1 = (1, 0); w_2 = (1, 0), e_2 = (.5, 1)
    # keep row 0 = (1 − .5·(1, 0))∘(1 − 1·(.5, 1)) = (.5, 1)∘(.5, 0) = (.25, 0)   (the erases multiply)
    # keep row 1 = (1 − .5·(1, 0))∘(1 − 0·(.5, 1)) = (.5, 1)
    # adds: row 0 = .5·(1, 1) + 1·(2, 2) = (2.5, 2.5); row 1 = .5·(1, 1) + 0 = (.5, .5)
    # M: row 0 = (1·.25, 2·0) + (2.5, 2.5) = (2.75, 2.5); row 1 = (3·.5, 4·1) + (.5, .5) = (2, 4.5)
    memory = T([[[1.0, 2.0], [3.0, 4.0]]])
    weights = T([[[0.5, 0.5], [1.0, 0.0]]])
    erase = T([[[1.0, 0.0], [0.5, 1.0]]])
    add = T([[[1.0, 1.0], [2.0, 2.0]]])
    close(addressing.erase_and_add(memory, weights, erase, add), [[[2.75, 2.5], [2.0, 4.5]]])
    swapped = addressing.erase_and_add(memory, weights.flip(1), erase.flip(1), add.flip(1))
    close(swapped, [[[2.75, 2.5], [2.0, 4.5]]])  # the order of the heads does not matter


def test_add_write_by_hand():
    # head 1: (.25, .75)ᵀ (4, 8) = ((1, 2), (3, 6)); head 2: (1, 0)ᵀ (1, −1); plus M = 1
    memory = torch.ones(1, 2, 2)
    written = addressing.add_write(memory, T([[[0.25, 0.75], [1.0, 0.0]]]), T([[[4.0, 8.0], [1.0, -1.0]]]))
    close(written, [[[3.0, 2.0], [4.0, 7.0]]])


# ------------------------------------------------------------------ LRU access (MANN)

def test_lru_usage_by_hand():
    # .95 (1, .5, 0) + [(0, 1, 0) + (.5, 0, .5)] + [(.2, 0, .8) + (0, 0, 1)]
    # = (.95, .475, 0) + (.5, 1, .5) + (.2, 0, 1.8) = (1.65, 1.475, 2.3)
    usage = lru.update_usage(T([[1.0, 0.5, 0.0]]), T([[[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]]),
                             T([[[0.2, 0.0, 0.8], [0.0, 0.0, 1.0]]]), 0.95)
    close(usage, [[1.65, 1.475, 2.3]])


def test_least_used_weights_mark_the_n_smallest():
    # (.3, .1, .5, .2): the two smallest are .1 (slot 1) and .2 (slot 3)
    close(lru.least_used_weights(T([[0.3, 0.1, 0.5, 0.2]]), 2), [[0.0, 1.0, 0.0, 1.0]])
    close(lru.least_used_weights(T([[0.3, 0.1, 0.5, 0.2], [0.0, 0.9, 0.8, 0.7]]), 1),
          [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])


def test_least_used_weights_break_ties_by_lowest_index_and_mark_exactly_n():
    # (.2, 0, 0, 0), n = 2: three slots tie at 0; slots 1 and 2 are marked, not 3
    close(lru.least_used_weights(T([[0.2, 0.0, 0.0, 0.0]]), 2), [[0.0, 1.0, 1.0, 0.0]])
    close(lru.least_used_weights(torch.zeros(2, 5), 3), [[1.0, 1.0, 1.0, 0.0, 0.0]] * 2)
    torch.manual_seed(0)
    usage = torch.randint(0, 3, (8, 6)).float()  # many ties
    for n in (1, 2, 4):
        marked = lru.least_used_weights(usage, n)
        close(marked.sum(-1), torch.full((8,), float(n)))
        # every marked slot is used no more than every unmarked one
        highest_marked = torch.where(marked.bool(), usage, -math.inf).amax(-1)
        lowest_unmarked = torch.where(marked.bool(), math.inf, usage).amin(-1)
        assert (highest_marked <= lowest_unmarked).all()


def test_lru_write_weights_by_hand():
    # σ(ln 3) = 3/4: .75 (0, 1, 0, 0) + .25 (1, 0, 0, 1) = (.25, .75, 0, .25)
    # σ(0) = 1/2:   .5 (0, 0, 1, 0) + .5 (1, 0, 0, 1) = (.5, 0, .5, .5)
    weights = lru.lru_write_weights(T([[[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]]), T([[1.0, 0.0, 0.0, 1.0]]),
                                    T([[math.log(3), 0.0]]))
    close(weights, [[[0.25, 0.75, 0.0, 0.25], [0.5, 0.0, 0.5, 0.5]]])


def test_zero_least_used_clears_exactly_that_slot():
    memory = T([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]]).repeat(3, 1, 1).requires_grad_()
    # least used: slot 1; slot 0; a tie between slots 1 and 2 → slot 1 (the lowest index)
    usage = T([[0.5, 0.1, 0.9], [0.0, 0.1, 0.9], [0.3, 0.1, 0.1]])
    cleared = lru.zero_least_used(memory, usage)
    close(cleared, [[[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]],
                    [[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]],
                    [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]]])
    cleared.sum().backward()  # the kept rows pass their gradient through, the cleared row none
    close(memory.grad[:, :, 0], [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])


def test_zero_least_used_clears_the_slot_least_used_weights_picks_first():
    torch.manual_seed(0)
    usage = torch.randint(0, 3, (16, 5)).float()  # many ties
    cleared = lru.zero_least_used(torch.ones(16, 5, 2), usage)
    close((cleared[..., 0] == 0).float(), lru.least_used_weights(usage, 1))


# ------------------------------------------------------------------ DNC

def test_retention_by_hand():
    # (1 − .5 (1, 0, 0)) ∘ (1 − 1 (0, .5, .5)) = (.5, 1, 1) ∘ (1, .5, .5) = (.5, .5, .5)
    close(dnc.retention(T([[0.5, 1.0]]), T([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]])), [[0.5, 0.5, 0.5]])


def test_dnc_usage_by_hand():
    # u + w − u∘w = (.5 + .5 − .25, 0 + 1 − 0, 1 + 0 − 0) = (.75, 1, 1); ∘ ψ (1, 1, .5) = (.75, 1, .5)
    close(dnc.update_usage(T([[0.5, 0.0, 1.0]]), T([[0.5, 1.0, 0.0]]), T([[1.0, 1.0, 0.5]])), [[0.75, 1.0, 0.5]])


def test_dnc_usage_with_two_write_heads_by_hand():
    # w = 1 − (1 − (.5, 0, 0))∘(1 − (.5, .5, 0)) = 1 − (.25, .5, 1) = (.75, .5, 0)
    # u + w − u∘w = (.5 + .75 − .375, 0 + .5 − 0, 1 + 0 − 0) = (.875, .5, 1)
    # ∘ ψ (1, .5, .5) = (.875, .25, .5)
    usage = dnc.update_usage(T([[0.5, 0.0, 1.0]]), T([[[0.5, 0.0, 0.0], [0.5, 0.5, 0.0]]]), T([[1.0, 0.5, 0.5]]))
    close(usage, [[0.875, 0.25, 0.5]])


def test_allocation_by_hand():
    # sorted usage: .2 (slot 1), .5 (slot 0), .9 (slot 2)
    # a1 = 1 − .2 = .8; a0 = (1 − .5)·.2 = .1; a2 = (1 − .9)·.2·.5 = .01
    allocation = dnc.allocation_weights(T([[0.5, 0.2, 0.9]]))
    close(allocation, [[0.1, 0.8, 0.01]])


def test_allocation_favours_the_least_used_slot_and_sums_to_at_most_one():
    torch.manual_seed(0)
    usage = torch.rand(6, 7, dtype=torch.float64)
    allocation = dnc.allocation_weights(usage)
    assert torch.equal(allocation.argmax(-1), usage.argmin(-1))
    assert (allocation >= 0).all() and (allocation.sum(-1) <= 1).all()
    # Σ_j a[φ_j] telescopes to 1 − Π_i u[i] (with u squeezed into [ε, 1])
    squeezed = dnc.EPSILON + (1 - dnc.EPSILON) * usage
    close(allocation.sum(-1), 1 - squeezed.prod(-1))
    close(dnc.allocation_weights(torch.ones(2, 4)), torch.zeros(2, 4))  # a full memory allocates nowhere


def test_allocation_gradients_are_finite_at_zero_and_full_usage():
    usage = T([[0.0, 0.0, 0.5, 1.0]], dtype=torch.float64, requires_grad=True)
    allocation = dnc.allocation_weights(usage)
    allocation[0, 2].backward()  # a[2] = (1 − .5)·u0·u1: sensitive to the zero usages
    assert torch.isfinite(usage.grad).all() and usage.grad[0, :2].abs().min() > 0


def test_dnc_write_weights_by_hand():
    # .5 (.25 (1, 0, 0) + .75 (.2, .8, 0)) = .5 (.4, .6, 0) = (.2, .3, 0); batch 2: g^w = 0 writes nothing
    weights = dnc.write_weights(T([[0.2, 0.8, 0.0], [0.2, 0.8, 0.0]]), T([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
                                T([0.25, 0.5]), T([0.5, 0.0]))
    close(weights, [[0.2, 0.3, 0.0], [0.0, 0.0, 0.0]])


def test_precedence_by_hand():
    # (1 − (0 + .25 + .5)) (.5, .5, 0) + (0, .25, .5) = (.125, .125, 0) + (0, .25, .5)
    close(dnc.update_precedence(T([[0.5, 0.5, 0.0]]), T([[0.0, 0.25, 0.5]])), [[0.125, 0.375, 0.5]])


LINK_BEFORE = T([[[0.0, 0.5, 0.0], [0.2, 0.0, 0.0], [0.0, 0.4, 0.0]]])
# L[i, j] = (1 − w[i] − w[j]) L_{t−1}[i, j] + w[i] p[j] with p = (.5, .25, 0), w = (0, .5, .25):
# L[0,1] = (1 − 0 − .5)·.5 + 0 = .25          L[0,2] = (1 − 0 − .25)·0 + 0 = 0
# L[1,0] = (1 − .5 − 0)·.2 + .5·.5 = .35       L[1,2] = (1 − .5 − .25)·0 + .5·0 = 0
# L[2,0] = (1 − .25 − 0)·0 + .25·.5 = .125     L[2,1] = (1 − .25 − .5)·.4 + .25·.25 = .1625
LINK_AFTER = [[[0.0, 0.25, 0.0], [0.35, 0.0, 0.0], [0.125, 0.1625, 0.0]]]


def test_update_link_by_hand():
    close(dnc.update_link(LINK_BEFORE, T([[0.5, 0.25, 0.0]]), T([[0.0, 0.5, 0.25]])), LINK_AFTER)


def test_update_link_applies_the_mask_it_is_given():
    previous, precedence, write_w = LINK_BEFORE, T([[0.5, 0.25, 0.0]]), T([[0.0, 0.5, 0.25]])
    built = dnc.update_link(previous, precedence, write_w)
    assert torch.equal(dnc.update_link(previous, precedence, write_w, dnc.off_diagonal_mask(3, previous)), built)
    # a mask of ones keeps the diagonal: L[1, 1] = (1 − .5 − .5) L[1, 1] + .5 · p[1] = .125
    kept = dnc.update_link(previous, precedence, write_w, torch.ones(3, 3))
    close(kept.diagonal(dim1=-2, dim2=-1), [[0.0, 0.125, 0.0]])
    close(kept * (1 - torch.eye(3)), LINK_AFTER)


def test_directional_weights_by_hand():
    # head 1, w = (.5, .5, 0): f[i] = Σ_j L[i,j] w[j] = (.25·.5, .35·.5, (.125 + .1625)·.5) = (.125, .175, .14375)
    #                          b[i] = Σ_j L[j,i] w[j] = ((0 + .35)·.5, (.25 + 0)·.5, 0) = (.175, .125, 0)
    # head 2, w = (0, 0, 1):   f[i] = L[i,2] = (0, 0, 0); b[i] = L[2,i] = (.125, .1625, 0)
    forward, backward = dnc.directional_weights(T(LINK_AFTER), T([[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]]))
    close(forward, [[[0.125, 0.175, 0.14375], [0.0, 0.0, 0.0]]])
    close(backward, [[[0.175, 0.125, 0.0], [0.125, 0.1625, 0.0]]])


def test_links_record_write_order_and_directions_follow_it():
    # write slot 0, then slot 1, then slot 2
    precedence = dnc.update_precedence(torch.zeros(1, 3), T([[1.0, 0.0, 0.0]]))
    link = dnc.update_link(torch.zeros(1, 3, 3), precedence, T([[0.0, 1.0, 0.0]]))
    close(link, [[[0, 0, 0], [1, 0, 0], [0, 0, 0]]])  # slot 1 was written after slot 0
    precedence = dnc.update_precedence(precedence, T([[0.0, 1.0, 0.0]]))
    close(precedence, [[0.0, 1.0, 0.0]])
    link = dnc.update_link(link, precedence, T([[0.0, 0.0, 1.0]]))
    close(link, [[[0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    forward, backward = dnc.directional_weights(link, T([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]))
    close(forward, [[[0, 1, 0], [0, 0, 1]]])  # after slot 0 came slot 1; after slot 1, slot 2
    close(backward, [[[0, 0, 0], [1, 0, 0]]])  # nothing before slot 0; before slot 1 came slot 0


def test_link_diagonal_is_zero():
    torch.manual_seed(0)
    link = torch.rand(2, 5, 5)  # even a previous link with a non-zero diagonal
    updated = dnc.update_link(link, torch.softmax(torch.randn(2, 5), -1), torch.softmax(torch.randn(2, 5), -1))
    assert torch.equal(torch.diagonal(updated, dim1=-2, dim2=-1), torch.zeros(2, 5))
    assert (updated.sum() > 0) and torch.isfinite(updated).all()


def test_dnc_read_weights_by_hand():
    # modes in order (backward, content, forward):
    # head 1: .5 (1, 0, 0) + .25 (.2, .8, 0) + .25 (0, 0, 1) = (.55, .2, .25)
    # head 2: all content → (0, .5, .5)
    weights = dnc.read_weights(T([[[0.2, 0.8, 0.0], [0.0, 0.5, 0.5]]]),
                               T([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]),
                               T([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]),
                               T([[[0.5, 0.25, 0.25], [0.0, 1.0, 0.0]]]))
    close(weights, [[[0.55, 0.2, 0.25], [0.0, 0.5, 0.5]]])


# ------------------------------------------------------------------ every function: shapes, dtypes,
# devices, batch independence

def _random_inputs(b: int, h: int, n: int, w: int, dtype: torch.dtype, device: str = "cpu"):
    """name -> (function, inputs, expected output shape(s)) for batch b, heads h, slots n, width w."""
    def rand(*shape):
        return torch.rand(*shape, dtype=dtype, device=device)

    def simplex(*shape):
        return torch.softmax(torch.randn(*shape, dtype=dtype, device=device), -1)

    def normal(*shape):
        return torch.randn(*shape, dtype=dtype, device=device)

    bhn, bn, bhw = (b, h, n), (b, n), (b, h, w)
    return {
        "cosine_similarity": (addressing.cosine_similarity, (normal(b, n, w), normal(*bhw)), bhn),
        "content_weights": (addressing.content_weights, (normal(b, n, w), normal(*bhw), 5 * rand(b, h)), bhn),
        "interpolate": (addressing.interpolate, (simplex(*bhn), simplex(*bhn), rand(b, h)), bhn),
        "circular_shift": (addressing.circular_shift, (simplex(*bhn), simplex(b, h, 3)), bhn),
        "sharpen": (addressing.sharpen, (simplex(*bhn), 1 + rand(b, h)), bhn),
        "ntm_address": (addressing.ntm_address, (normal(b, n, w), normal(*bhw), rand(b, h), rand(b, h),
                                                 simplex(b, h, 3), 1 + rand(b, h), simplex(*bhn)), bhn),
        "read": (addressing.read, (normal(b, n, w), simplex(*bhn)), bhw),
        "erase_and_add": (addressing.erase_and_add, (normal(b, n, w), simplex(*bhn), rand(*bhw), normal(*bhw)),
                          (b, n, w)),
        "add_write": (addressing.add_write, (normal(b, n, w), simplex(*bhn), normal(*bhw)), (b, n, w)),
        "lru.update_usage": (lru.update_usage, (rand(*bn), simplex(*bhn), simplex(*bhn), 0.95), bn),
        "least_used_weights": (lru.least_used_weights, (rand(*bn), h), bn),
        "lru_write_weights": (lru.lru_write_weights, (simplex(*bhn), rand(*bn), normal(b, h)), bhn),
        "zero_least_used": (lru.zero_least_used, (normal(b, n, w), rand(*bn)), (b, n, w)),
        "retention": (dnc.retention, (rand(b, h), simplex(*bhn)), bn),
        "dnc.update_usage": (dnc.update_usage, (rand(*bn), rand(*bn) / n, rand(*bn)), bn),
        "dnc.update_usage(heads)": (dnc.update_usage, (rand(*bn), simplex(*bhn), rand(*bn)), bn),
        "allocation_weights": (dnc.allocation_weights, (rand(*bn),), bn),
        "dnc.write_weights": (dnc.write_weights, (simplex(*bn), simplex(*bn), rand(b), rand(b)), bn),
        "update_precedence": (dnc.update_precedence, (simplex(*bn), simplex(*bn) * rand(b, 1)), bn),
        "update_link": (dnc.update_link, (rand(b, n, n), simplex(*bn), simplex(*bn) * rand(b, 1)), (b, n, n)),
        "directional_weights": (dnc.directional_weights, (rand(b, n, n), simplex(*bhn)), (bhn, bhn)),
        "read_weights": (dnc.read_weights, (simplex(*bhn), simplex(*bhn), simplex(*bhn), simplex(b, h, 3)), bhn),
    }


FUNCTION_NAMES = sorted(_random_inputs(1, 1, 1, 1, torch.float32))


def _as_tuple(output):
    return output if isinstance(output, tuple) else (output,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_shapes_and_dtypes_with_several_batch_elements_and_heads(name, dtype):
    torch.manual_seed(0)
    function, inputs, shapes = _random_inputs(3, 2, 5, 4, dtype)[name]
    outputs = _as_tuple(function(*inputs))
    shapes = shapes if isinstance(shapes[0], tuple) else (shapes,)
    assert [tuple(o.shape) for o in outputs] == list(shapes)
    assert all(o.dtype == dtype and torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_batch_elements_are_computed_independently(name):
    torch.manual_seed(0)
    function, inputs, _ = _random_inputs(3, 2, 5, 4, torch.float64)[name]
    together = _as_tuple(function(*inputs))
    for b in range(3):
        alone = _as_tuple(function(*(x[b : b + 1] if torch.is_tensor(x) else x for x in inputs)))
        for batched, single in zip(together, alone):
            assert torch.allclose(batched[b : b + 1], single, atol=1e-12), (name, b)


DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_functions_run_on_the_device_of_their_inputs(name, device):
    # "meta" tensors carry no data: this catches tensors created on the CPU regardless of the inputs
    function, inputs, _ = _random_inputs(2, 2, 5, 4, torch.float32, device)[name]
    assert all(o.device.type == device for o in _as_tuple(function(*inputs)))


# ------------------------------------------------------------------ gradients

def double(*shape, softmax=False, positive=False, unit=False):
    value = torch.randn(*shape, dtype=torch.float64)
    if softmax:
        value = torch.softmax(value, -1)
    if positive:
        value = value.abs() + 0.5
    if unit:
        value = torch.sigmoid(value)
    return value


GRADIENT_CASES = {
    "cosine_similarity": lambda: (addressing.cosine_similarity, (double(2, 4, 3), double(2, 2, 3))),
    "content_weights": lambda: (addressing.content_weights, (double(2, 4, 3), double(2, 2, 3),
                                                             double(2, 2, positive=True))),
    "interpolate": lambda: (addressing.interpolate, (double(2, 2, 4, softmax=True), double(2, 2, 4, softmax=True),
                                                     double(2, 2, unit=True))),
    "circular_shift": lambda: (addressing.circular_shift, (double(2, 2, 4, softmax=True),
                                                           double(2, 2, 3, softmax=True))),
    "sharpen": lambda: (addressing.sharpen, (double(2, 2, 4, softmax=True), double(2, 2, positive=True) + 1)),
    "ntm_address": lambda: (addressing.ntm_address, (double(2, 4, 3), double(2, 2, 3), double(2, 2, positive=True),
                                                     double(2, 2, unit=True), double(2, 2, 3, softmax=True),
                                                     double(2, 2, positive=True) + 1, double(2, 2, 4, softmax=True))),
    "read": lambda: (addressing.read, (double(2, 4, 3), double(2, 2, 4, softmax=True))),
    "erase_and_add": lambda: (addressing.erase_and_add, (double(2, 4, 3), double(2, 2, 4, softmax=True),
                                                         double(2, 2, 3, unit=True), double(2, 2, 3))),
    "add_write": lambda: (addressing.add_write, (double(2, 4, 3), double(2, 2, 4, softmax=True), double(2, 2, 3))),
    "lru_write_weights": lambda: (lru.lru_write_weights, (double(2, 2, 4, softmax=True), double(2, 4, unit=True),
                                                          double(2, 2))),
    "zero_least_used(memory)": lambda: (lambda m: lru.zero_least_used(m, T([[0.3, 0.1, 0.5, 0.2]] * 2)),
                                        (double(2, 4, 3),)),
    "retention": lambda: (dnc.retention, (double(2, 3, unit=True), double(2, 3, 4, softmax=True))),
    "dnc.update_usage": lambda: (dnc.update_usage, (double(2, 4, unit=True), double(2, 2, 4, softmax=True),
                                                    double(2, 4, unit=True))),
    "allocation_weights": lambda: (dnc.allocation_weights, (T([[0.1, 0.5, 0.3, 0.8], [0.9, 0.0, 0.6, 0.2]],
                                                              dtype=torch.float64),)),  # no ties
    "dnc.write_weights": lambda: (dnc.write_weights, (double(2, 4, softmax=True), double(2, 4, softmax=True),
                                                      double(2, unit=True), double(2, unit=True))),
    "update_precedence": lambda: (dnc.update_precedence, (double(2, 4, softmax=True), double(2, 4, softmax=True))),
    "update_link": lambda: (dnc.update_link, (double(2, 4, 4), double(2, 4, softmax=True), double(2, 4, softmax=True))),
    "directional_weights": lambda: (dnc.directional_weights, (double(2, 4, 4), double(2, 2, 4, softmax=True))),
    "read_weights": lambda: (dnc.read_weights, (double(2, 2, 4, softmax=True), double(2, 2, 4), double(2, 2, 4),
                                                double(2, 2, 3, softmax=True))),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradients_match_finite_differences(name):
    torch.manual_seed(0)
    function, inputs = GRADIENT_CASES[name]()
    inputs = tuple(x.detach().requires_grad_() for x in inputs)
    assert gradcheck(function, inputs, eps=1e-6, atol=1e-5)


def test_to_slot_order_by_hand():
    """Sorted values back at their slots: order [2, 0, 1] puts 10 at slot 2, 20 at 0, 30 at 1."""
    from fewshot_mem.memory import dnc as dnc_memory

    out = dnc_memory.to_slot_order(torch.tensor([[10.0, 20.0, 30.0]]), torch.tensor([[2, 0, 1]]))
    assert out.tolist() == [[20.0, 30.0, 10.0]]
