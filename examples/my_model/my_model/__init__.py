"""An example fewshot-mem plug-in (see ../README.md)."""

from .learner import NearestNeighbourLearner

__all__ = ["NearestNeighbourLearner"]
