"""Small Omniglot-shaped data sets in the official layout, for bad-input and download tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from fewshot_mem.data.omniglot import Layout


def png_bytes(size: int = 105, seed: int = 0) -> bytes:
    """A one-bit PNG like Omniglot's: white paper (1), a few black strokes (0)."""
    paper = np.ones((size, size), dtype=bool)
    rng = np.random.default_rng(seed)
    row, column = rng.integers(0, size, 2)
    paper[row, :] = False
    paper[:, column] = False
    paper[rng.integers(0, size, 20), rng.integers(0, size, 20)] = False
    out = io.BytesIO()
    Image.fromarray(paper).save(out, format="PNG")
    return out.getvalue()


def make_fake_omniglot_zip(path: Path, alphabets: dict[str, int], *, drawers: int = 20, size: int = 105,
                           start_id: int = 1, part: str = "background", skip: tuple[str, ...] = (),
                           corrupt: tuple[str, ...] = (), seed: int = 0) -> Path:
    """Writes ``images_<part>/<Alphabet>/characterNN/<id>_<drawer>.png`` members into a zip.

    Characters are numbered from 1 within each alphabet and get consecutive
    ids from ``start_id``. ``skip`` leaves the named members out and
    ``corrupt`` stores garbage instead of a PNG for them (names relative to
    ``images_<part>/``, e.g. "Alpha/character01/0001_07.png"). ``seed``
    changes every image.
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
                    data = (b"\x89PNG\r\n\x1a\n not really" if relative in corrupt
                            else png_bytes(size, seed * 100_003 + official_id * 100 + drawer))
                    archive.writestr(f"images_{part}/{relative}", data)
                official_id += 1
    return path


# A miniature data set with the official structure: 3 + 2 alphabets, 4 + 3 characters, ids 1..7.
TINY_BACKGROUND = {"Alpha": 2, "Beta": 1, "Gamma": 1}
TINY_EVALUATION = {"Delta": 2, "Epsilon": 1}
TINY_LAYOUT = Layout(alphabets={"background": 3, "evaluation": 2}, characters={"background": 4, "evaluation": 3})
TINY_NAMES = ["Alpha/character01", "Alpha/character02", "Beta/character01", "Gamma/character01",
              "Delta/character01", "Delta/character02", "Epsilon/character01"]


def make_tiny_omniglot(directory: Path, **background_options) -> dict[str, Path]:
    """The two zips of the miniature data set in ``directory``; options change the background one."""
    return {"background": make_fake_omniglot_zip(directory / "images_background.zip", TINY_BACKGROUND,
                                                 **background_options),
            "evaluation": make_fake_omniglot_zip(directory / "images_evaluation.zip", TINY_EVALUATION,
                                                 part="evaluation", start_id=5)}
