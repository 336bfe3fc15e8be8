"""The meta-learner LSTM (Ravi & Larochelle 2017): its update rule against the paper's equations
computed by hand, its initialisation, the first-order meta-gradient and test-time batch norm.
(The learner contract runs in tests/test_models.py.)"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fewshot_mem.budgets import recipe
from fewshot_mem.data.episodes import EpisodeSampler, LabelOffsetSampler
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import TaskSpec, images_to_float
from fewshot_mem.models import meta_lstm
from fewshot_mem.models.meta_lstm import MetaLearnerLSTM, MetaLSTMLearner, preprocess
from fewshot_mem.suites import get_suite

TASK = TaskSpec(ways=3, image_shape=SMALL_IMAGE)


def _learner(**changes) -> MetaLSTMLearner:
    torch.manual_seed(0)
    return MetaLSTMLearner(TASK, **{**MetaLSTMLearner.test_hyperparameters, **changes}).double()


def _support(episodes=(0,), queries: int = 2):
    batch = EpisodeSampler(synthetic_pool(), ways=TASK.ways, shots=2, queries=queries).batch(list(episodes))
    return (images_to_float(batch.support_images).double(), batch.support_labels,
            images_to_float(batch.query_images).double())


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _by_hand(optimizer: MetaLearnerLSTM, theta: float, gradients: list[float], losses: list[float]) -> float:
    """One coordinate through len(gradients) updates, in scalars, from the paper's equations and
    PyTorch's LSTM cell (gates i, f, g, o), with the module's own weights (one hidden unit)."""
    w_ih, w_hh = optimizer.gradient_lstm.weight_ih.tolist(), optimizer.gradient_lstm.weight_hh.tolist()
    b = [x + y for x, y in zip(optimizer.gradient_lstm.bias_ih.tolist(), optimizer.gradient_lstm.bias_hh.tolist())]
    (w_f,), (w_i,) = optimizer.forget_gate.weight.tolist(), optimizer.input_gate.weight.tolist()
    b_f, b_i = optimizer.forget_gate.bias.item(), optimizer.input_gate.bias.item()
    h = c = forget = input_ = 0.0
    for gradient, loss in zip(gradients, losses):  # each |value| ≥ e^-10: (log|x| / 10, sign x)
        x = [math.log(abs(gradient)) / 10, math.copysign(1, gradient), math.log(abs(loss)) / 10, 1.0]
        pre = [sum(w * v for w, v in zip(w_ih[row], x)) + w_hh[row][0] * h + b[row] for row in range(4)]
        c = _sigmoid(pre[1]) * c + _sigmoid(pre[0]) * math.tanh(pre[2])
        h = _sigmoid(pre[3]) * math.tanh(c)
        forget = _sigmoid(w_f[0] * h + w_f[1] * theta + w_f[2] * forget + b_f)
        input_ = _sigmoid(w_i[0] * h + w_i[1] * theta + w_i[2] * input_ + b_i)
        theta = forget * theta - input_ * gradient
    return theta


def test_preprocessing_is_log_magnitude_and_sign_with_small_values_scaled():
    values = torch.tensor([0.2, -3.0, 1e-6, -2e-5, 0.0], dtype=torch.float64)
    expected = [(math.log(0.2) / 10, 1), (math.log(3.0) / 10, -1), (-1, 1e-6 * math.exp(10)),
                (-1, -2e-5 * math.exp(10)), (-1, 0)]
    assert torch.allclose(preprocess(values), torch.tensor(expected, dtype=torch.float64))


def test_the_update_rule_is_the_papers_step_computed_by_hand():
    """Two updates of two coordinates, every weight random (none zero): the gates read h_t, θ_{t−1}
    and their own previous value, and θ_t = f_t θ_{t−1} − i_t ∇_t."""
    torch.manual_seed(1)
    optimizer = MetaLearnerLSTM(lstm_hidden_size=1).double()
    with torch.no_grad():
        for weight in optimizer.parameters():
            weight.uniform_(-1, 1)
    thetas, gradients, losses = [0.5, -1.2], [[0.3, -0.02], [-4.0, 0.7]], [1.6, 0.9]
    theta = torch.tensor([thetas], dtype=torch.float64)  # (B = 1, P = 2)
    state = optimizer.initial_state(theta)
    for step in range(2):
        theta, state = optimizer(theta, torch.tensor([[g[step] for g in gradients]], dtype=torch.float64),
                                 torch.tensor([losses[step]], dtype=torch.float64), state)
    expected = [_by_hand(optimizer, t, g, losses) for t, g in zip(thetas, gradients)]
    assert torch.allclose(theta[0], torch.tensor(expected, dtype=torch.float64), rtol=1e-12)


def test_gates_start_near_the_papers_init_so_the_first_update_is_almost_sgd():
    """Forget gate ≈ 1 and input gate ≈ 0.01 on every coordinate at the first update: θ_1 is θ_0
    minus a small step along the support gradient, shrunk by at most 3%."""
    learner = _learner(updates=1, lstm_hidden_size=20)
    support, labels, _ = _support()
    theta_0 = learner.initial_parameters().detach().requires_grad_()
    loss = F.cross_entropy(learner._classify(theta_0, support[0]), labels[0])
    (gradient,) = torch.autograd.grad(loss, theta_0)
    optimizer = learner.meta_learner
    theta_1, (_, _, forget, input_) = optimizer(theta_0[None], gradient[None], loss.detach()[None],
                                                optimizer.initial_state(theta_0[None]))
    assert forget.min() > 0.97 and input_.max() < 0.03 and input_.min() > 0.003
    assert torch.allclose(theta_1, forget * theta_0 - input_ * gradient)
    adapted, _ = learner.adapt(support, labels)  # the learner feeds the meta-learner that gradient and loss
    assert torch.allclose(adapted, theta_1)


def test_the_meta_gradient_is_first_order():
    """With constant gates, θ_1 = f θ_0 − i ∇L(θ_0) and ∇ an input: d⟨θ_1, v⟩/dθ_0 = f v exactly.
    Backpropagating through the gradient would add −i H v (H the support loss's Hessian)."""
    learner = _learner(updates=1)
    with torch.no_grad():
        learner.meta_learner.forget_gate.weight.zero_()
        learner.meta_learner.input_gate.weight.zero_()
        learner.meta_learner.input_gate.bias.zero_()  # i = 1/2: a Hessian term would be large
    support, labels, _ = _support()
    theta_1, _ = learner.adapt(support, labels)
    direction = torch.randn_like(theta_1)
    gradients = torch.autograd.grad((theta_1 * direction).sum(), list(learner.classifier.parameters()))
    forget = torch.sigmoid(learner.meta_learner.forget_gate.bias)
    assert torch.allclose(torch.cat([g.flatten() for g in gradients]), forget * direction[0], rtol=1e-10)


def test_a_query_is_scored_alone_at_test_time():
    """Evaluation: batch norm normalizes the queries with the running averages of the support
    passes, so a query's score does not depend on the other queries (training uses their batch)."""
    learner = _learner().eval()
    support, labels, queries = _support(queries=3)
    with torch.no_grad():
        together = learner._scores(support, labels, queries)
        alone = torch.cat([learner._scores(support, labels, queries[:, q : q + 1]) for q in range(queries.shape[1])],
                          dim=1)
        assert torch.allclose(together, alone)
        learner.train()
        assert not torch.allclose(learner._scores(support, labels, queries), together)


def test_the_recipe_follows_the_shots_and_builds_the_learner():
    for suite, updates in (("miniimagenet-5way-1shot", 12), ("miniimagenet-5way-5shot", 8)):
        chosen = recipe("meta-lstm", get_suite(suite), "paper")
        assert chosen == MetaLSTMLearner.recipe(get_suite(suite), "paper")
        assert chosen.protocol == "episodic" and chosen.hyperparameters["updates"] == updates
        MetaLSTMLearner(get_suite(suite).task(), **chosen.hyperparameters)


def test_evaluation_in_passes_of_a_few_episodes_gives_the_same_scores(monkeypatch):
    """Evaluation bounds memory by scoring a few episodes per pass (every learner coordinate of every
    episode is a row of the meta-learner's LSTM); the scores are those of one pass."""
    learner = _learner().eval()
    episodic = EpisodeSampler(synthetic_pool(), ways=TASK.ways, shots=1, queries=2).batch(range(5)).inputs()
    online = LabelOffsetSampler(synthetic_pool(), ways=TASK.ways, instances_per_class=2).batch(range(5)).inputs()
    with torch.no_grad():
        at_once = learner.episodic_logits(episodic), learner.online_logits(online)
        monkeypatch.setattr(meta_lstm, "EVAL_COORDINATES_PER_PASS", 2 * learner.initial_parameters().numel())
        in_passes = learner.episodic_logits(episodic), learner.online_logits(online)
    assert all(torch.allclose(a, b) for a, b in zip(at_once, in_passes))
