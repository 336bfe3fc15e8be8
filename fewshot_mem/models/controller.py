"""The controller of the memory models: an LSTM cell or a feedforward layer, one interface."""

from __future__ import annotations

import torch
from torch import nn

CONTROLLERS = ("lstm", "feedforward")


class Controller(nn.Module):
    """Maps (inputs (B, I), (hidden, cell) (B, C) each) to the next (hidden, cell).

    A feedforward controller (ReLU layer) has no memory of its own: its cell is
    passed through unchanged, so every model keeps one state layout.
    """

    def __init__(self, kind: str, input_size: int, size: int) -> None:
        super().__init__()
        if kind not in CONTROLLERS:
            raise ValueError(f"unknown controller {kind!r}: use one of {', '.join(CONTROLLERS)}")
        self.kind, self.size = kind, size
        self.core = nn.LSTMCell(input_size, size) if kind == "lstm" else nn.Linear(input_size, size)

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "lstm":
            return self.core(inputs, state)
        return torch.relu(self.core(inputs)), state[1]
