"""iMAML (Rajeswaran, Finn, Kakade & Levine 2019, "Meta-Learning with Implicit Gradients", NeurIPS).

Each episode's weights solve the proximal problem

    φ*(θ) = argmin_φ  L_support(φ) + λ/2 ‖φ − θ‖²

approximately, by ``inner_steps`` steps of gradient descent from φ = θ (MAML's functional
adaptation, ``maml.gradient_descent``), and the meta-gradient of a loss L on the adapted
weights is the implicit one,

    dL/dθ = (I + H/λ)⁻¹ ∇_φ L(φ*),    H = ∇²_φ L_support(φ*),

found by ``cg_steps`` steps of conjugate gradient on Hessian-vector products (``torch.func``).
Nothing backpropagates through the inner loop, so memory does not grow with its steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar

import torch
from torch.func import grad, vjp, vmap

from ..data.episodes import EpisodicInputs, OnlineInputs
from .learner import Learner, Protocol, TaskSpec, images_to_float
from .maml import FunctionalMAML, Weights, conv4_classifier, gradient_descent
from .online import EVALUATION_BLOCK, NoveltyScoring, fill_prefix_scores, previous_labels, scored_steps

if TYPE_CHECKING:
    from ..budgets import Recipe
    from ..suites import Suite


def flat(weights: Weights) -> torch.Tensor:
    """The weights as one vector, in the dictionary's order."""
    return torch.cat([w.reshape(-1) for w in weights.values()])


def unflat(vector: torch.Tensor, like: Weights) -> Weights:
    """A vector cut back into tensors shaped like ``like``'s."""
    pieces = vector.split([w.numel() for w in like.values()])
    return {name: piece.view_as(w) for (name, w), piece in zip(like.items(), pieces)}


def conjugate_gradient(matrix_times: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       steps: int) -> torch.Tensor:
    """x ≈ A⁻¹b for a symmetric positive-definite A given as x ↦ Ax: ``steps`` steps from x = 0."""
    x, residual = torch.zeros_like(b), b.clone()
    direction, squared = residual.clone(), residual @ residual
    for _ in range(steps):
        if squared == 0:  # solved exactly (or b = 0): a further step would divide by zero
            break
        product = matrix_times(direction)
        step = squared / (direction @ product)
        x, residual = x + step * direction, residual - step * product
        squared, previous = residual @ residual, squared
        direction = residual + (squared / previous) * direction
    return x


def proximal_solution(network: FunctionalMAML, theta: Weights, inputs: torch.Tensor, labels: torch.Tensor,
                      steps: int, lam: float) -> Weights:
    """φ* of one episode: gradient descent at the network's ``lr`` on the support loss plus
    λ/2 ‖φ − θ‖², from φ = θ. No graph is kept: the meta-gradient is implicit."""
    anchor = {name: w.detach() for name, w in theta.items()}

    def proximal_loss(weights: Weights) -> torch.Tensor:
        distance = sum(((w - anchor[name]) ** 2).sum() for name, w in weights.items())
        return network.support_loss(weights, inputs, labels) + lam / 2 * distance

    return gradient_descent(proximal_loss, anchor, steps, network.lr, first_order=True)


def implicit_meta_gradient(network: FunctionalMAML, phi: Weights, inputs: torch.Tensor, labels: torch.Tensor,
                           outer_gradient: Weights, lam: float, cg_steps: int) -> Weights:
    """(I + H/λ)⁻¹ ∇_φ L for one episode, H the Hessian of its support loss at φ*, by conjugate
    gradient. Hessian-vector products are reverse over reverse (``vjp`` of ``grad``: H is
    symmetric, so vᵀH = Hv); batch norm's forward-over-reverse second derivatives are not
    to be trusted (pytorch/pytorch#196699)."""
    _, hessian_times = vjp(grad(lambda w: network.support_loss(w, inputs, labels)), phi)

    def matrix_times(vector: torch.Tensor) -> torch.Tensor:  # (I + H/λ) v
        return vector + flat(hessian_times(unflat(vector, phi))[0]) / lam

    return unflat(conjugate_gradient(matrix_times, flat(outer_gradient), cg_steps), phi)


class ImplicitAdaptation(torch.autograd.Function):
    """θ ↦ φ*(θ) for a batch of episodes, with the implicit meta-gradient as its backward.

    Forward: each episode's proximal problem, all at once under ``vmap``. Backward: each
    episode's conjugate-gradient solve, one at a time (second derivatives of batch norm
    under ``vmap`` are wrong in torch 2.14: see ``MAMLLearner.per_episode``), summed over
    the batch for θ.
    """

    @staticmethod
    def forward(ctx, learner: "IMAMLLearner", inputs: torch.Tensor, labels: torch.Tensor,
                *theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        network = learner.network
        weights = dict(zip(network.weights(), theta))
        solve = vmap(lambda x, y: proximal_solution(network, weights, x, y, learner.inner_steps, learner.lam),
                     randomness="same")
        phi = solve(inputs, labels)  # name -> (B, *shape)
        ctx.learner = learner
        ctx.save_for_backward(inputs, labels, *phi.values())
        return tuple(phi.values())

    @staticmethod
    def backward(ctx, *outer_gradients: torch.Tensor):
        learner = ctx.learner
        inputs, labels, *phi = ctx.saved_tensors
        names = list(learner.network.weights())
        total = [torch.zeros_like(p[0]) for p in phi]
        for episode in range(inputs.shape[0]):
            solved = implicit_meta_gradient(
                learner.network, {n: p[episode] for n, p in zip(names, phi)}, inputs[episode], labels[episode],
                {n: g[episode] for n, g in zip(names, outer_gradients)}, learner.lam, learner.cg_steps)
            total = [t + s for t, s in zip(total, solved.values())]
        return (None, None, None, *total)


class IMAMLLearner(NoveltyScoring, Learner):
    """MAML's Conv-4 classifier, meta-trained with implicit gradients.

    Each episode adapts θ by ``inner_steps`` steps of SGD at ``inner_lr`` on the support
    loss plus λ/2 ‖φ − θ‖², in training and evaluation alike; the meta-gradient comes from
    ``cg_steps`` of conjugate gradient (``ImplicitAdaptation``). Batch norm uses the
    statistics of the batch it sees, as in MAML. Online, θ is adapted afresh on the labelled
    prefix at every step and x_t scored in one batch with the prefix, as MAML does, and
    unseen labels get the calibrated novelty score (``models.online``).

    Args (defaults: the paper's Omniglot 5-way settings, iMAML with gradient descent):
        task: ways, label encoding and image shape.
        hidden_size: filters per block (64).
        inner_steps: gradient steps on the proximal problem (16; 25 for 20-way).
        inner_lr: their step size (0.1, the reference code's).
        lam: λ, the proximal regularization (2.0).
        cg_steps: conjugate-gradient steps for the meta-gradient (5).
        max_pool: max-pooling instead of strided convolutions (default: for colour images).
    """

    native_protocol: ClassVar[Protocol] = "episodic"
    label: ClassVar[str] = "iMAML"
    references: ClassVar[tuple[str, ...]] = ("rajeswaran2019",)
    test_hyperparameters: ClassVar[dict] = dict(hidden_size=8, inner_steps=2, cg_steps=2)
    in_default_bench: ClassVar[bool] = False
    evaluation_block: ClassVar[int | None] = EVALUATION_BLOCK  # episodes adapted at once online (None: all)

    def __init__(self, task: TaskSpec, hidden_size: int = 64, inner_steps: int = 16, inner_lr: float = 0.1,
                 lam: float = 2.0, cg_steps: int = 5, max_pool: bool | None = None) -> None:
        super().__init__(task)
        max_pool = task.image_shape[0] == 3 if max_pool is None else max_pool
        self.inner_steps, self.lam, self.cg_steps = inner_steps, lam, cg_steps
        self.network = FunctionalMAML(conv4_classifier(task, hidden_size, max_pool), inner_lr)
        self._init_novelty()

    def adapted(self, images: torch.Tensor, labels: torch.Tensor) -> Weights:
        """φ* of each episode: (B, M, c, H, W) images and (B, M) labels -> name -> (B, *shape)."""
        theta = self.network.weights()
        phi = ImplicitAdaptation.apply(self, images_to_float(images).to(self.dtype), labels, *theta.values())
        return dict(zip(theta, phi))

    def scores(self, weights: Weights, images: torch.Tensor) -> torch.Tensor:
        """(B, M, N) scores of (B, M, c, H, W) images, each episode with its own weights."""
        return vmap(self.network, randomness="same")(images_to_float(images).to(self.dtype), weights)

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        return self.scores(self.adapted(inputs.support_images, inputs.support_labels), inputs.query_images)

    def seen_scores(self, inputs: OnlineInputs) -> torch.Tensor:
        images = inputs.images  # (B, T, c, H, W)
        labels = previous_labels(inputs.previous_codes)  # (B, T−1): y_1..y_{T−1}
        scores = torch.zeros(*images.shape[:2], self.task.ways, dtype=self.dtype, device=images.device)
        # x_t is scored in one batch with the prefix so that batch norm sees only the past.
        return fill_prefix_scores(
            scores, lambda chosen, step: self.scores(self.adapted(images[chosen, :step], labels[chosen, :step]),
                                                     images[chosen, : step + 1])[:, -1],
            scored_steps(inputs), None if self.training else self.evaluation_block)

    @classmethod
    def recipe(cls, suite: "Suite", budget: str) -> "Recipe":
        """Rajeswaran et al., iMAML with gradient descent on Omniglot: 16 inner steps for 5-way and
        25 for 20-way, λ = 2, 5 CG steps, Adam at 1e-3 on meta-batches of 32 tasks, at least
        20,000 meta-steps, as many queries as shots (the reference code's settings). On
        mini-ImageNet, where those sources give no settings, MAML's network and step size."""
        from ..budgets import Recipe  # the trainer's types, above models: imported when asked
        from ..train import TrainConfig

        if suite.dataset == "miniimagenet":  # ours: MAML's 32 filters, 0.01 step, its 10 test steps
            hyperparameters, batch = dict(hidden_size=32, inner_steps=10, inner_lr=0.01), 4
        else:
            hyperparameters, batch = dict(inner_steps=25 if suite.ways >= 20 else 16), 32
        configs = {
            "smoke": TrainConfig("smoke", episodes=4, batch_size=2, validate_every=1, validation_episodes=4),
            "quick": TrainConfig("quick", episodes=150 * batch, batch_size=batch, validate_every=50,
                                 validation_episodes=100),
            "paper": TrainConfig.of_steps("paper", steps=20_000, batch_size=batch, validate_every=1000,
                                          validation_episodes=600),
        }
        return Recipe("episodic", configs[budget], hyperparameters, train_queries=suite.shots[0])
