"""Omniglot's splits, as data: rules over the canonical character order (see
:mod:`fewshot_mem.data.omniglot`), each class a (character, rotation) pair; and :func:`rotate`,
the one rotation convention (counter-clockwise) of every split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .omniglot_files import PARTS, Character

if TYPE_CHECKING:
    from .omniglot import Omniglot


@dataclass(frozen=True)
class SplitRule:
    """A split as a rule over the canonical character order.

    A character is kept if it comes from one of ``parts``, lies after the
    character named ``after`` and up to (including) ``through``, is in one of
    ``include_alphabets`` (when given) and in none of ``exclude_alphabets``.
    Each kept character gives one class per rotation, character-major.
    """

    parts: tuple[str, ...] = PARTS
    after: str | None = None
    through: str | None = None
    include_alphabets: tuple[str, ...] = ()
    exclude_alphabets: tuple[str, ...] = ()
    rotations: tuple[int, ...] = (0,)


FOUR_ROTATIONS = (0, 90, 180, 270)
VINYALS_LAST_TRAINVAL = "Gurmukhi/character41"  # the 1200th character in canonical order
VINYALS_VAL_ALPHABETS = ("Hebrew", "Mkhedruli_(Georgian)", "Armenian", "Early_Aramaic", "Bengali")

OMNIGLOT_SPLITS: dict[str, SplitRule] = {
    # Vinyals et al. (2016), as distributed with the prototypical-networks code (Snell et al. 2017).
    "vinyals/train": SplitRule(through=VINYALS_LAST_TRAINVAL, exclude_alphabets=VINYALS_VAL_ALPHABETS,
                               rotations=FOUR_ROTATIONS),
    "vinyals/val": SplitRule(through=VINYALS_LAST_TRAINVAL, include_alphabets=VINYALS_VAL_ALPHABETS,
                             rotations=FOUR_ROTATIONS),
    "vinyals/trainval": SplitRule(through=VINYALS_LAST_TRAINVAL, rotations=FOUR_ROTATIONS),
    "vinyals/test": SplitRule(after=VINYALS_LAST_TRAINVAL, rotations=FOUR_ROTATIONS),
    # Lake et al. (2015): learn on the background set, test on the evaluation set.
    "lake/background": SplitRule(parts=("background",)),
    "lake/evaluation": SplitRule(parts=("evaluation",)),
}


@dataclass(frozen=True)
class OmniglotSplit:
    """Classes of one split: ``characters[i]`` rotated by ``rotations[i]`` degrees is class i."""

    name: str  # "vinyals/train", "lake/background", ...
    characters: np.ndarray  # (C,) int64 indices into Omniglot.characters
    rotations: np.ndarray  # (C,) int64 degrees in {0, 90, 180, 270}, counter-clockwise

    def __len__(self) -> int:
        return len(self.characters)

    def class_names(self, omniglot: "Omniglot") -> list[str]:
        """``"Alphabet/characterNN/rotDDD"`` for each class, as in the Vinyals split files."""
        return [f"{omniglot.characters[c].name}/rot{r:03d}" for c, r in zip(self.characters, self.rotations)]


def select_split(characters: tuple[Character, ...], name: str) -> OmniglotSplit:
    """Applies the rule ``OMNIGLOT_SPLITS[name]`` to characters in canonical order."""
    if name not in OMNIGLOT_SPLITS:
        raise KeyError(f"unknown Omniglot split {name!r}; choose from {', '.join(OMNIGLOT_SPLITS)}")
    rule = OMNIGLOT_SPLITS[name]
    names = [c.name for c in characters]
    first = _position(names, rule.after, name) + 1 if rule.after else 0
    last = _position(names, rule.through, name) + 1 if rule.through else len(names)
    kept = [i for i in range(first, last)
            if characters[i].part in rule.parts
            and (not rule.include_alphabets or characters[i].alphabet in rule.include_alphabets)
            and characters[i].alphabet not in rule.exclude_alphabets]
    indices = np.repeat(np.array(kept, dtype=np.int64), len(rule.rotations))
    rotations = np.tile(np.array(rule.rotations, dtype=np.int64), len(kept))
    indices.setflags(write=False)  # splits are cached and shared
    rotations.setflags(write=False)
    return OmniglotSplit(name, indices, rotations)


def _position(names: list[str], character: str, split: str) -> int:
    try:
        return names.index(character)
    except ValueError:
        raise ValueError(f"split {split!r} is cut at {character}, which this copy of Omniglot lacks") from None


def rotate(images, degrees: int):
    """Rotates (..., H, W) images (a numpy array or a torch tensor) ``degrees`` counter-clockwise.

    ``degrees`` must be a multiple of 90; this is the rotation convention of
    every split. Returns a view for numpy arrays.
    """
    if degrees % 90:
        raise ValueError(f"Omniglot rotations are multiples of 90 degrees, not {degrees}")
    k = (degrees // 90) % 4
    if isinstance(images, np.ndarray):
        return np.rot90(images, k=k, axes=(-2, -1))
    return images.rot90(k, dims=(-2, -1))  # a torch tensor; torch is not imported for numpy users

