"""The command line: python -m fewshot_mem.leaderboard submit | validate | verify | render."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FewshotMemError
from .render import render
from .schema import DEFAULT_ROOT, DEFAULT_VERIFY_TOLERANCE
from .submit import submit
from .validate import entry_files, find_entry, validate_file
from .verify import format_verification, verify


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the leaderboard folder (default: leaderboard)")
    common.add_argument("--data-root", default=None, help="default: $FEWSHOT_MEM_DATA or data/")
    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.leaderboard", description="The leaderboard: results anyone can re-check, one JSON file per entry.")
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
    verify_.add_argument("entry", help="an entry name, suite/name, or JSON path")
    verify_.add_argument("--device", default="cpu")
    verify_.add_argument("--checkpoint", type=Path, default=None, help="the weights, for an entry that has a URL")
    verify_.add_argument("--tolerance", type=float, default=DEFAULT_VERIFY_TOLERANCE,
                         help="largest difference allowed in a mean or CI, as a fraction (default 0.001)")
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
        path = find_entry(args.root, args.entry)
        verification = verify(path, args.root, data_root=args.data_root, device=args.device,
                              checkpoint=args.checkpoint, tolerance=args.tolerance)
        print(format_verification(verification, f"{path.parent.name}/{path.stem}", args.tolerance))
        return 0 if verification.ok else 1
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

