"""The leaderboard: results anyone can re-check, one JSON file per entry.

    python -m fewshot_mem.leaderboard submit RESULT.json [--checkpoint PATH | --checkpoint-url URL]
        [--name ENTRY] [--submitter NAME] [--paper URL] [--code URL] [--force] [--root DIR]
    python -m fewshot_mem.leaderboard validate [ENTRY ...] [--root DIR]
    python -m fewshot_mem.leaderboard verify (ENTRY | --all | --changed [--base REF]) [--exact]
        [--max-differing FRACTION] [--record] [--device cpu] [--checkpoint PATH] [--root DIR]
    python -m fewshot_mem.leaderboard render [--root DIR]

An entry, ``<root>/entries/<suite name@version>/<entry>.json``, holds the results JSON the
bench wrote (every table with its per-episode accuracies), who submitted it, links to the
paper and code, the sha256 of its weights (a weights-only state dict stored at
``<root>/checkpoints/<suite>/<entry>.pt``, or a URL to get it from), and, once verified, a
verification record.

``validate`` checks what can be checked without running a model: the schema, that the suite
exists, that the fingerprint is that of the suite's frozen test episodes (so results of
``--test-episodes`` runs are refused), the number of episodes, that every per-episode value is
a whole number of predictions right, that every mean and interval follows from them, and that
a verification record is one of these results. ``verify`` also rebuilds the learner, loads the
checkpoint (its own location only, after checking its sha256, with ``weights_only=True``),
re-evaluates it the way the bench does (``evaluate.evaluate_on_suite``) and compares every
per-episode value. ``render`` writes ``README.md`` and ``index.html``. Exit codes: 0 fine,
1 verification failed, 2 bad input (nothing changed).

Modules: ``schema`` (the entry format), ``validate`` (checks that need no model), ``weights``
(the sha256 and safe loading of an entry's weights), ``submit``, ``verify`` (the per-episode
comparison and its tolerance), ``record`` (verification records), ``changes`` (which entries a
change touches), ``context`` (suite order and descriptions, the papers' figures, training cost),
``ranking`` (the ranked tables and the summary), ``render`` (README.md and index.html),
``guide`` (how to read the board and submit to it) and ``cli``.
"""

from .cli import main
from .ranking import build_board, shared_ranks
from .render import render
from .schema import DEFAULT_ROOT, InvalidEntryError, LeaderboardError
from .submit import submit
from .validate import entry_files, find_entry, read_json, validate_board, validate_file
from .verify import Verification, verify

__all__ = ["DEFAULT_ROOT", "InvalidEntryError", "LeaderboardError", "Verification", "build_board", "entry_files",
           "find_entry", "main", "read_json", "render", "shared_ranks", "submit", "validate_board", "validate_file",
           "verify"]
