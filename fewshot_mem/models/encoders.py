"""Image encoders that turn uint8 image sequences into feature sequences."""

from __future__ import annotations

import torch
from torch import nn

from .learner import images_to_float

# Pixels per forward pass of a per-image network in evaluation. Whole evaluation batches are large
# (100 episodes x 50 images): at 84x84 the first Conv-4 block alone would hold ~9 GB of activations,
# while Omniglot's evaluation batches (28x28 and smaller) still run in one pass.
EVAL_PIXELS_PER_PASS = 1 << 22

CONV4_BLOCKS = 4


def embed_images(network: nn.Module, images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Runs a per-image ``network`` over (B, M, c, H, W) uint8 images: -> (B, M, D).

    In evaluation mode batch norm uses its running statistics, so images are
    independent and go through in bounded chunks (the result is the same). In
    training the batch statistics span the whole batch, so it runs at once.
    """
    flat = images.flatten(0, 1)
    pixels = images.shape[-2] * images.shape[-1]
    per_pass = max(1, flat.shape[0] if network.training else EVAL_PIXELS_PER_PASS // pixels)
    features = torch.cat([network(images_to_float(chunk).to(dtype)) for chunk in flat.split(per_pass)])
    return features.view(*images.shape[:2], -1)


class FlattenEncoder(nn.Module):
    """Raw pixels as features, as Santoro et al. (2016) feed 20x20 Omniglot: (B, T, c, H, W) -> (B, T, c·H·W)."""

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.output_size = image_shape[0] * image_shape[1] * image_shape[2]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images_to_float(images).flatten(2)


class Conv4Encoder(nn.Module):
    """Conv-4 features: four blocks of 3×3 convolution (64 filters), batch norm, ReLU and 2×2
    max-pooling (learn2learn's ``CNN4Backbone``, the embedding of prototypical networks),
    flattened: (B, T, c, H, W) -> (B, T, 64·⌊H/16⌋·⌊W/16⌋), 1600 features at 84×84.

    Batch norm uses batch statistics in training and running statistics in evaluation, so
    evaluated scores never depend on other images (later steps, other episodes).
    """

    def __init__(self, image_shape: tuple[int, int, int], hidden_size: int = 64) -> None:
        from .l2l import learn2learn as l2l  # here: importing learn2learn takes seconds, and only Conv-4 needs it

        super().__init__()
        channels, height, width = image_shape
        # Each block keeps the size (padding 1) and max-pools by 2, rounding down.
        height, width = height >> CONV4_BLOCKS, width >> CONV4_BLOCKS
        if not height or not width:
            raise ValueError(f"Conv-4 needs images of at least 16x16 pixels, not {image_shape[1]}x{image_shape[2]}")
        self.backbone = l2l.vision.models.CNN4Backbone(hidden_size=hidden_size, layers=CONV4_BLOCKS,
                                                       channels=channels, max_pool=True)
        self.output_size = hidden_size * height * width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return embed_images(self.backbone, images, self.backbone[0].conv.weight.dtype)


ENCODERS = {"flatten": FlattenEncoder, "conv4": Conv4Encoder}


def build_encoder(kind: str, image_shape: tuple[int, int, int]) -> nn.Module:
    """An encoder by name; each has an ``output_size`` attribute."""
    if kind not in ENCODERS:
        raise ValueError(f"unknown image encoder {kind!r}; choose from: {', '.join(ENCODERS)}")
    return ENCODERS[kind](image_shape)
