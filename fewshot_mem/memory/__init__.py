"""Memory addressing as small pure functions, shared by every memory model.

``addressing``: content (cosine) and NTM location addressing, reads, writes.
``lru``: Santoro et al.'s least-recently-used access (MANN).
``dnc``: the DNC's usage, allocation, precedence, temporal links and read modes.

The functions are re-exported here. The two usage updates share a name in their
modules, so here they are ``lru_update_usage`` and ``dnc_update_usage``; the DNC's
``write_weights`` is ``dnc_write_weights`` (``lru_write_weights`` keeps its name).
"""

from . import addressing, dnc, lru
from .addressing import (add_write, circular_shift, content_weights, cosine_similarity, erase_and_add,
                         interpolate, ntm_address, read, sharpen)
from .dnc import (allocation_weights, directional_weights, read_weights, retention, update_link,
                  update_precedence)
from .dnc import update_usage as dnc_update_usage
from .dnc import write_weights as dnc_write_weights
from .lru import least_used_weights, lru_write_weights, zero_least_used
from .lru import update_usage as lru_update_usage

__all__ = [
    "addressing", "dnc", "lru",
    # addressing
    "add_write", "circular_shift", "content_weights", "cosine_similarity", "erase_and_add", "interpolate",
    "ntm_address", "read", "sharpen",
    # lru
    "least_used_weights", "lru_update_usage", "lru_write_weights", "zero_least_used",
    # dnc
    "allocation_weights", "directional_weights", "dnc_update_usage", "dnc_write_weights", "read_weights",
    "retention", "update_link", "update_precedence",
]
