"""iMAML: the proximal inner problem and its implicit meta-gradient, against finite differences."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad

from fewshot_mem.data.episodes import EpisodeSampler
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.imaml import IMAMLLearner, conjugate_gradient, flat
from fewshot_mem.models.learner import TaskSpec, images_to_float

TASK = TaskSpec(ways=2, image_shape=SMALL_IMAGE)


def tiny_imaml(**settings) -> IMAMLLearner:
    """iMAML on a small smooth network (tanh, no batch norm), where gradient descent solves the
    proximal problem to machine precision: with Conv-4's ReLUs and batch norm over a few images
    it does not converge that far, and finite differences of an unsolved φ* mean nothing."""
    torch.manual_seed(0)
    settings = {"hidden_size": 2, "inner_steps": 200, "inner_lr": 0.02, "lam": 10.0, **settings}
    learner = IMAMLLearner(TASK, **settings)
    learner.network.module = nn.Sequential(nn.Flatten(), nn.Linear(400, 3), nn.Tanh(), nn.Linear(3, 2))
    return learner.double().train()


def episodes():
    return EpisodeSampler(synthetic_pool(), ways=2, shots=2, queries=2).batch([0, 1])


def query_loss(learner: IMAMLLearner) -> torch.Tensor:
    batch = episodes()
    return F.cross_entropy(learner.episodic_logits(batch.inputs()).flatten(0, 1), batch.query_labels.flatten())


def test_conjugate_gradient_solves_a_positive_definite_system():
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(6, 6, dtype=torch.float64, generator=generator)
    matrix = root @ root.T + torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64, generator=generator)
    torch.testing.assert_close(conjugate_gradient(lambda v: matrix @ v, b, steps=6), torch.linalg.solve(matrix, b))


def test_inner_loop_solves_the_proximal_problem():
    """With enough steps, φ* is stationary: ∇L_support(φ*) + λ(φ* − θ) = 0, per episode."""
    learner = tiny_imaml()
    batch = episodes()
    with torch.no_grad():
        phi = learner.adapted(batch.support_images, batch.support_labels)
    theta = learner.network.weights()
    for episode in range(2):
        weights = {name: w[episode] for name, w in phi.items()}
        inputs = images_to_float(batch.support_images[episode]).double()
        gradient = grad(learner.network.support_loss)(weights, inputs, batch.support_labels[episode])
        stationarity = flat(gradient) + learner.lam * (flat(weights) - flat(theta).detach())
        assert stationarity.abs().max() < 1e-9
        assert (flat(weights) - flat(theta)).abs().max() > 1e-3  # it did adapt


def test_implicit_meta_gradient_matches_finite_differences():
    """d/dθ L_query(φ*(θ)) from conjugate gradient on Hessian-vector products equals central
    differences of L_query(φ*(θ ± εe_i)), with φ* solved to high precision, for coordinates
    in every layer. A first-order gradient (dφ*/dθ = I), a sign error or a wrong λ fails it."""
    learner = tiny_imaml(cg_steps=100)
    query_loss(learner).backward()
    epsilon, checked = 1e-5, 0
    for parameter in learner.network.parameters():
        for index in (0, parameter.numel() // 2, parameter.numel() - 1):
            with torch.no_grad():
                original = parameter.view(-1)[index].item()
                parameter.view(-1)[index] = original + epsilon
                above = query_loss(learner).item()
                parameter.view(-1)[index] = original - epsilon
                below = query_loss(learner).item()
                parameter.view(-1)[index] = original
            difference = (above - below) / (2 * epsilon)
            assert abs(parameter.grad.view(-1)[index].item() - difference) <= 1e-6 + 1e-5 * abs(difference), \
                (parameter.shape, index, parameter.grad.view(-1)[index].item(), difference)
            checked += 1
    assert checked == 12


def test_the_bench_reads_imamls_recipe_from_its_class():
    """budgets.recipe hands "imaml" to IMAMLLearner.recipe: the paper's meta-batch of 32 and
    more inner steps for 20-way than for 5-way, episodic training with as many queries as shots."""
    from fewshot_mem.budgets import recipe
    from fewshot_mem.suites import get_suite

    five, twenty = get_suite("omniglot-5way-1shot"), get_suite("omniglot-20way-5shot")
    for suite in (five, twenty):
        for budget in ("smoke", "quick", "paper"):
            assert recipe("imaml", suite, budget) == IMAMLLearner.recipe(suite, budget)
        assert recipe("imaml", suite, "paper").protocol == "episodic"
        assert recipe("imaml", suite, "paper").train_queries == suite.shots[0]
    assert recipe("imaml", twenty, "paper").hyperparameters["inner_steps"] > \
        recipe("imaml", five, "paper").hyperparameters["inner_steps"]
    assert recipe("imaml", five, "paper").config.batch_size == 32


def test_training_steps_lower_the_query_loss():
    """A few meta-steps with Adam on the implicit gradient (Conv-4, batch norm, the default
    λ and CG steps) lower the loss on the episodes they train on."""
    torch.manual_seed(0)
    learner = IMAMLLearner(TASK, hidden_size=8, inner_steps=3, cg_steps=3).train()
    batch = EpisodeSampler(synthetic_pool(), ways=2, shots=1, queries=2).batch([0, 1, 2, 3])
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = learner.loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
