"""The command line: python -m fewshot_mem.leaderboard submit | validate | verify | render."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FewshotMemError
from .changes import BASE_VARIABLE, changed_entries
from .record import record_verification
from .render import render
from .schema import DEFAULT_ROOT, DEFAULT_SUITE, LeaderboardError
from .submit import submit
from .validate import entry_files, find_entry, read_json, stored_weights, validate_file
from .verify import EXACT, Tolerance, format_verification, verify


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the leaderboard folder (default: leaderboard)")
    common.add_argument("--data-root", default=None, help="default: $FEWSHOT_MEM_DATA or data/")
    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.leaderboard", description="The leaderboard: results anyone can re-check, one JSON file per entry.",
                                     epilog="Exit codes: 0 fine, 1 verification failed (a value differs), "
                                            "2 bad input (nothing was changed).")
    commands = parser.add_subparsers(dest="command", required=True)
    submit_ = commands.add_parser("submit", parents=[common], help="validate a results JSON and add it as an entry")
    submit_.add_argument("result", type=Path, help="a results JSON written by the bench")
    submit_.add_argument("--checkpoint", type=Path, default=None,
                         help="the weights (default: the checkpoint the results JSON names)")
    submit_.add_argument("--checkpoint-url", default=None,
                         help="store no weights here: they are at this URL (the file --checkpoint names)")
    submit_.add_argument("--name", default=None, help="entry name (default: MODEL-BUDGET-seedN)")
    submit_.add_argument("--submitter", default="anonymous")
    submit_.add_argument("--paper", default=None, help="URL of the paper")
    submit_.add_argument("--code", default=None, help="URL of the code")
    submit_.add_argument("--force", action="store_true", help="replace an entry of the same name")
    validate_ = commands.add_parser("validate", parents=[common], help="check every entry (or the ones named)")
    validate_.add_argument("entries", nargs="*", help="entry names, suite/name, or JSON paths")
    verify_ = commands.add_parser("verify", parents=[common], help="re-evaluate an entry's checkpoint and compare")
    verify_.add_argument("entry", nargs="?", default=None,
                         help=f"an entry: suite@version/name, a name (looked up in {DEFAULT_SUITE} first), or a path")
    verify_.add_argument("--all", action="store_true", help="every entry whose weights are stored here, one line each")
    verify_.add_argument("--changed", action="store_true",
                         help="the entries that differ from the base branch (what CI checks), one line each")
    verify_.add_argument("--base", default=None, help=f"with --changed: the branch or commit to compare with "
                         f"(default: ${BASE_VARIABLE}, else origin/main, else main)")
    verify_.add_argument("--device", default="cpu")
    verify_.add_argument("--checkpoint", type=Path, default=None, help="the weights, for an entry that has a URL")
    verify_.add_argument("--exact", action="store_true", help="demand bit-identical per-episode values "
                         "(what the machine that made the entry gets)")
    verify_.add_argument("--max-differing", type=float, default=Tolerance().fraction, metavar="FRACTION",
                         help="share of a table's episodes that may differ, by one prediction each, for another "
                              "machine's float rounding (default 0.005)")
    verify_.add_argument("--record", action="store_true",
                         help="write a verification record (commit, date, hardware) into each entry that passes")
    commands.add_parser("render", parents=[common], help="write README.md and index.html")
    return parser.parse_args(argv)


def _validate_command(args: argparse.Namespace) -> int:
    paths = [find_entry(args.root, e) for e in args.entries] or entry_files(args.root)
    bad = 0
    for path in paths:
        problems = validate_file(path, args.root, args.data_root)
        bad += bool(problems)
        print(f"{'ok' if not problems else 'INVALID'}  {path}" + "".join(f"\n  - {p}" for p in problems))
    print(f"{len(paths)} entries, {bad} invalid")
    return 2 if bad else 0


def _tolerance(args: argparse.Namespace) -> Tolerance:
    if not 0 <= args.max_differing < 1:
        raise LeaderboardError(f"--max-differing is a fraction in [0, 1), not {args.max_differing}")
    return EXACT if args.exact else Tolerance(args.max_differing)


def _verify_command(args: argparse.Namespace) -> int:
    if (args.entry is not None) + args.all + args.changed != 1:
        raise LeaderboardError("verify needs one entry, or --all, or --changed")
    if args.checkpoint and args.entry is None:
        raise LeaderboardError("--checkpoint names the weights of one entry: it goes with neither --all nor --changed")
    if args.all:
        return verify_many(entry_files(args.root), args)
    if args.changed:
        chosen, how = changed_entries(args.root, entry_files(args.root), args.base)
        print(f"{len(chosen)} to verify: {how}")
        return verify_many(chosen, args, confirm_records=True)
    path = find_entry(args.root, args.entry)
    verification = verify(path, args.root, data_root=args.data_root, device=args.device,
                          checkpoint=args.checkpoint, tolerance=_tolerance(args))
    print(format_verification(verification, f"{path.parent.name}/{path.stem}", _tolerance(args)))
    if verification.ok and args.record:
        record_verification(path, verification, args.device)
        print(f"recorded in {path}")
    return 0 if verification.ok else 1


OUTCOME_LABELS = {"ok": "ok", "differs": "DIFFERS", "error": "ERROR", "skipped": "skipped"}  # problems shout


def verify_many(paths: list[Path], args: argparse.Namespace, confirm_records: bool = False) -> int:
    """One line per entry; 2 if any could not be checked, else 1 if any differs, else 0. With
    ``confirm_records``, an entry whose weights are not here may not claim a verification."""
    tolerance, outcomes = _tolerance(args), []
    for path in paths:
        outcome, line = _verify_line(path, args, tolerance, confirm_records)
        outcomes.append(outcome)
        print(f"{OUTCOME_LABELS[outcome]:9} {path.parent.name}/{path.stem}: {line}")
    counts = {outcome: outcomes.count(outcome) for outcome in OUTCOME_LABELS}
    print(f"{len(paths)} entries: " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
          + f" (allowed: {tolerance.describe()})")
    return 2 if counts["error"] else 1 if counts["differs"] else 0


def _verify_line(path: Path, args: argparse.Namespace, tolerance: Tolerance, confirm_records: bool) -> tuple[str, str]:
    """(ok | differs | error | skipped, what to say) for one entry of verify --all / --changed."""
    try:
        if stored_weights(path, args.root) is None:
            if confirm_records and read_json(path).get("verification"):
                return "differs", "claims a verification, but its weights are not here to confirm it"
            return "skipped", "no weights stored here (it stays unverified)"
        verification = verify(path, args.root, data_root=args.data_root, device=args.device, tolerance=tolerance)
    except FewshotMemError as error:
        return "error", str(error).replace("\n", " ")
    if not verification.ok:
        return "differs", verification.summary()
    if args.record:
        record_verification(path, verification, args.device)
        return "ok", verification.summary() + " (recorded)"
    return "ok", verification.summary()


def run(args: argparse.Namespace) -> int:
    if args.command == "submit":
        path = submit(args.result, args.root, checkpoint=args.checkpoint, checkpoint_url=args.checkpoint_url,
                      name=args.name, submitter=args.submitter, paper=args.paper, code=args.code,
                      force=args.force, data_root=args.data_root)
        print(f"added {path}; now run: python -m fewshot_mem.leaderboard verify {path.parent.name}/{path.stem}")
        return 0
    if args.command == "validate":
        return _validate_command(args)
    if args.command == "verify":
        return _verify_command(args)
    readme, page = render(args.root, args.data_root)
    print(f"wrote {readme} and {page}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (FewshotMemError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

