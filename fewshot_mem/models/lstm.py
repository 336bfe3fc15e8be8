"""The LSTM baseline of Santoro et al. (2016), "Meta-learning with memory-augmented
neural networks", ICML: an LSTM reads [x_t, y_{t-1}] and predicts y_t."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .encoders import build_encoder
from .learner import SequenceLearner, State, TaskSpec


class LSTMLearner(SequenceLearner):
    """LSTM over the label-offset sequence; a linear read-out of its hidden state.

    Args:
        task: ways, label encoding and image shape.
        controller_size: LSTM hidden units (Santoro et al.: 200).
        image_encoder: how images become features ("flatten": raw pixels; "conv4": Conv-4 features).
    """

    label: ClassVar[str] = "LSTM"
    references: ClassVar[tuple[str, ...]] = ("hochreiter1997", "santoro2016")
    test_hyperparameters: ClassVar[dict] = dict(controller_size=6)
    in_default_bench: ClassVar[bool] = True

    def __init__(self, task: TaskSpec, controller_size: int = 200, image_encoder: str = "flatten") -> None:
        super().__init__(task)
        self.encoder = build_encoder(image_encoder, task.image_shape)
        self.lstm = nn.LSTM(self.encoder.output_size + task.code_size, controller_size, batch_first=True)
        self.readout = nn.Linear(controller_size, task.output_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def initial_state(self, batch_size: int, reference: torch.Tensor) -> State:
        zeros = reference.new_zeros(batch_size, self.lstm.hidden_size)
        return zeros, zeros

    def run(self, features: torch.Tensor, previous_codes: torch.Tensor, state: State
            ) -> tuple[torch.Tensor, State]:
        # cuDNN / oneDNN run the whole sequence in one call: no Python loop over time.
        hidden, cell = state[0].unsqueeze(0).contiguous(), state[1].unsqueeze(0).contiguous()  # (1, B, H)
        outputs, (hidden, cell) = self.lstm(torch.cat([features, previous_codes], dim=-1), (hidden, cell))
        return self.readout(outputs), (hidden[0], cell[0])  # (B, T, out), ((B, H), (B, H))

    def step(self, features: torch.Tensor, previous_code: torch.Tensor, state: State
             ) -> tuple[torch.Tensor, State]:
        scores, state = self.run(features[:, None], previous_code[:, None], state)
        return scores[:, 0], state
