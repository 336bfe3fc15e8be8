"""Small Omniglot-shaped data sets in the official layout, for bad-input and download tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(size: int = 105, seed: int = 0) -> bytes:
    """A one-bit PNG like Omniglot's: white background, a few black strokes."""
    pixels = np.ones((size, size), dtype=bool)
    rng = np.random.default_rng(seed)
    row = int(rng.integers(0, size))
    pixels[row, :] = False
    pixels[:, size - 1 - row] = False
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def make_fake_omniglot_zip(path: Path, alphabets: dict[str, int], part: str = "background",
                           drawers: int = 20, size: int = 105, start_id: int = 1,
                           skip: tuple[str, ...] = (), corrupt: tuple[str, ...] = ()) -> Path:
    """Writes ``images_<part>/<Alphabet>/characterNN/<id>_<drawer>.png`` members into a zip.

    ``skip`` leaves the named members (e.g. "A/character01/0001_07.png") out;
    ``corrupt`` writes garbage bytes for them instead of a PNG.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    official_id = start_id
    with zipfile.ZipFile(path, "w") as archive:
        for alphabet, characters in alphabets.items():
            for number in range(1, characters + 1):
                for drawer in range(1, drawers + 1):
                    relative = f"{alphabet}/character{number:02d}/{official_id:04d}_{drawer:02d}.png"
                    if relative in skip:
                        continue
                    data = b"not a png" if relative in corrupt else png_bytes(size, official_id * 100 + drawer)
                    archive.writestr(f"images_{part}/{relative}", data)
                official_id += 1
    return path


# A miniature data set with the official structure: 3 + 2 alphabets.
TINY_BACKGROUND = {"Alpha": 2, "Beta": 1, "Gamma": 1}
TINY_EVALUATION = {"Delta": 2, "Epsilon": 1}
TINY_EXPECTED = {"expected_alphabets": {"background": 3, "evaluation": 2},
                 "expected_characters": {"background": 4, "evaluation": 3}}


def make_tiny_omniglot(directory: Path, **background_options) -> dict[str, Path]:
    return {"background": make_fake_omniglot_zip(directory / "images_background.zip", TINY_BACKGROUND,
                                                 **background_options),
            "evaluation": make_fake_omniglot_zip(directory / "images_evaluation.zip", TINY_EVALUATION,
                                                 part="evaluation", start_id=5)}
