"""learn2learn, imported once and quietly.

``import learn2learn`` imports gym, which prints its retirement notice to
stderr on every import; fewshot-mem never touches gym, so the notice is noise.
Errors still propagate: only what is printed during the import is dropped.
"""

import contextlib
import io

with contextlib.redirect_stderr(io.StringIO()):
    import learn2learn  # noqa: E402

__all__ = ["learn2learn"]
