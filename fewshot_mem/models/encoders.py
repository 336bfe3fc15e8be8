"""Image encoders that turn uint8 image sequences into feature sequences."""

from __future__ import annotations

import torch
from torch import nn

from .learner import images_to_float


class FlattenEncoder(nn.Module):
    """Raw pixels as features, as Santoro et al. (2016) feed 20x20 Omniglot: (B, T, c, H, W) -> (B, T, c·H·W)."""

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.output_size = image_shape[0] * image_shape[1] * image_shape[2]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images_to_float(images).flatten(2)


def build_encoder(kind: str, image_shape: tuple[int, int, int]) -> nn.Module:
    """An encoder by name; each has an ``output_size`` attribute."""
    if kind == "flatten":
        return FlattenEncoder(image_shape)
    raise ValueError(f"unknown image encoder {kind!r}; choose from: flatten")
