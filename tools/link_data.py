"""Link the shared data set (``../shared/data`` by default) into the data root.

Only symbolic links are made, so nothing is ever written into the shared copy;
the decoded caches go into the data root beside the links. Files that already
exist in the data root are left alone, and a missing shared folder is not an
error: the loaders then search, download, or explain what they need.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# (dataset folder, files) that the loaders read from a data root.
SHARED_FILES = {
    "omniglot": ("images_background.zip", "images_evaluation.zip"),
}


def link(shared: Path, data_root: Path) -> list[Path]:
    made = []
    for folder, names in SHARED_FILES.items():
        for name in names:
            source, target = shared / folder / name, data_root / folder / name
            if not source.is_file() or target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source.resolve())
            made.append(target)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    args = parser.parse_args()
    for target in link(args.shared, args.data_root):
        print(f"linked {target} -> {target.resolve()}")


if __name__ == "__main__":
    main()
