"""Memory addressing as small pure functions, shared by every memory model.

``addressing``: content (cosine) and NTM location addressing, reads, writes.
``lru``: Santoro et al.'s least-recently-used access.
``dnc``: the DNC's usage, allocation, precedence and temporal links.
"""

from . import addressing, dnc, lru

__all__ = ["addressing", "dnc", "lru"]
