"""Counter-based random numbers: a pure function of (seed, episode, stream, index).

Episode ``i`` under seed ``s`` must be the same episode whatever the batch size,
the worker count or the machine. A stateful generator cannot promise that once
batches are drawn in a different grouping, so every random number here is a
hash of its coordinates (SplitMix64 finalizer, Steele et al. 2014), computed
for whole batches at once with NumPy's wrapping uint64 arithmetic.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_FLOAT_SCALE = 1.0 / float(1 << 53)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, elementwise over a uint64 array (wraps on overflow)."""
    with np.errstate(over="ignore"):
        z = values + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        return z ^ (z >> np.uint64(31))


def episode_keys(seed: int, episodes: np.ndarray, stream: int) -> np.ndarray:
    """One 64-bit key per episode and stream, shape (B,)."""
    with np.errstate(over="ignore"):
        base = splitmix64(np.array([seed & (2**64 - 1)], dtype=np.uint64)
                          ^ splitmix64(np.array([stream], dtype=np.uint64)))
        return splitmix64(base + np.asarray(episodes, dtype=np.uint64))


def random_bits(keys: np.ndarray, count: int) -> np.ndarray:
    """``count`` random uint64 values per key: shape (B,) -> (B, count)."""
    with np.errstate(over="ignore"):
        offsets = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
        return splitmix64(keys[:, None] ^ splitmix64(offsets)[None, :])


def uniform(keys: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform floats in [0, 1) with 53 random bits: (B,) -> (B, *shape)."""
    count = int(np.prod(shape, dtype=np.int64))
    bits = random_bits(keys, count) >> np.uint64(11)
    return (bits.astype(np.float64) * _FLOAT_SCALE).reshape(len(keys), *shape)


def integers(keys: np.ndarray, shape: tuple[int, ...], high: int) -> np.ndarray:
    """Integers in [0, high) (bias below 2**-40 for high < 2**13): (B,) -> (B, *shape)."""
    return np.floor(uniform(keys, shape) * high).astype(np.int64)


def permutations(keys: np.ndarray, length: int) -> np.ndarray:
    """A uniformly random permutation of range(length) per key: (B,) -> (B, length)."""
    return np.argsort(uniform(keys, (length,)), axis=1, kind="stable")


def distinct_integers(seed: int, episodes: np.ndarray, stream: int, count: int, high: int) -> np.ndarray:
    """``count`` distinct integers in [0, high), uniformly, per episode: (B,) -> (B, count).

    When repeats are rare (count² ≤ high/4), rejection sampling: a row with a
    repeat is redrawn from the episode's next attempt stream. Otherwise the
    first ``count`` entries of a random permutation of range(high). Either way
    the result depends on nothing but (seed, episode, stream).
    """
    if count > high:
        raise ValueError(f"cannot draw {count} distinct values from {high}")
    episodes = np.asarray(episodes, dtype=np.int64)
    if 4 * count * count > high:
        return permutations(episode_keys(seed, episodes, stream), high)[:, :count]
    result = np.empty((len(episodes), count), dtype=np.int64)
    pending = np.arange(len(episodes))
    attempt = 0
    while len(pending):
        keys = episode_keys(seed, episodes[pending], stream + (attempt << 32))
        draws = integers(keys, (count,), high)
        ordered = np.sort(draws, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        result[pending[~repeated]] = draws[~repeated]
        pending = pending[repeated]
        attempt += 1
    return result
