"""Memory addressing as small pure functions, shared by every memory model.

``addressing``: content (cosine) and NTM location addressing, reads, writes.
``lru``: Santoro et al.'s least-recently-used access (MANN).
``dnc``: the DNC's usage, allocation, precedence, temporal links and read modes.

The functions are used through their modules (``lru.update_usage``, ``dnc.update_usage``), so a
name is read with the paper it comes from.
"""

from . import addressing, dnc, lru

__all__ = ["addressing", "dnc", "lru"]
