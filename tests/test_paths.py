"""Safe writes: one atomic writer for every file the package writes, and directory locks."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fewshot_mem.errors import DirectoryInUseError, FewshotMemError
from fewshot_mem.paths import LOCK_NAME, locked, make_directories, remove_empty_directories, write_atomically

REPO = Path(__file__).resolve().parent.parent

WRITER = """
import sys
from pathlib import Path
from fewshot_mem.paths import write_atomically
path, payload, times = Path(sys.argv[1]), sys.argv[2].encode() * 1000, int(sys.argv[3])
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.readline()  # both writers start together
for _ in range(times):
    write_atomically(payload, path)
"""


def run_python(code: str, *args: str, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, **options)


def test_concurrent_writers_of_one_path_all_succeed(tmp_path):
    """Issue 20.8: with one fixed temporary name, a writer's file was renamed away by the other
    writer (FileNotFoundError: 292 of 600 writes were lost). Each writer has its own name now."""
    target = tmp_path / "board.json"
    writers = [run_python(WRITER, target, payload, 150, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) for payload in ("a", "b")]
    for writer in writers:
        assert writer.stdout.readline() == "ready\n"
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors
    assert target.read_bytes() in (b"a" * 1000, b"b" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["board.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "results.json"
    target.write_bytes(b"old")

    def fails_halfway(handle) -> None:
        handle.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomically(fails_halfway, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_torch_checkpoints_go_through_the_same_writer_with_the_usual_file_mode(tmp_path):
    target = tmp_path / "run" / "last.pt"
    write_atomically(lambda handle: torch.save({"step": 3, "w": torch.ones(2)}, handle), target)
    loaded = torch.load(target, weights_only=True)
    assert loaded["step"] == 3 and torch.equal(loaded["w"], torch.ones(2))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


HOLDER = """
import sys
from pathlib import Path
from fewshot_mem.paths import locked
with locked(Path(sys.argv[1]), "testing"):
    sys.stdout.write("locked\\n")
    sys.stdout.flush()
    sys.stdin.readline()
"""


def test_a_locked_directory_is_refused_to_another_process_until_released(tmp_path):
    run_dir = tmp_path / "run"
    holder = run_python(HOLDER, run_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(DirectoryInUseError) as error:
            with locked(run_dir, "training"):
                pytest.fail("two processes held the lock")
        assert isinstance(error.value, FewshotMemError)  # the CLI's exit code 2
        message = str(error.value)
        assert str(run_dir) in message and f"pid {holder.pid}, testing" in message and "start training" in message
    finally:
        holder.communicate("release\n", timeout=60)
    with locked(run_dir, "training"):  # released when its holder let go
        assert (run_dir / LOCK_NAME).read_text() == f"pid {os.getpid()}, training\n"


def test_the_folders_made_for_a_write_are_listed_and_taken_back_while_empty(tmp_path):
    made = make_directories(tmp_path / "a" / "b" / "c")
    assert made == [tmp_path / "a" / "b" / "c", tmp_path / "a" / "b", tmp_path / "a"]  # deepest first
    assert make_directories(tmp_path / "a" / "b") == []  # nothing new
    (tmp_path / "a" / "b" / "kept").write_text("someone else's")
    remove_empty_directories(made)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "kept"]  # c went; b is not empty
    with pytest.raises(OSError):
        make_directories(tmp_path / "new" / ("x" * 300))  # "new" is made, then the long name fails
    assert not (tmp_path / "new").exists()



# Where the package writes a file other than through write_atomically, and why that is safe.
IN_PLACE_ON_PURPOSE = {
    ("paths.py", "write_atomically"): "the writer itself: a private temporary file, renamed over the target",
    ("paths.py", "locked"): "the lock file: its content only names the holder",
    ("metrics_log.py", "write"): "metrics.jsonl is appended to; read_metrics drops a torn last line",
    ("data/cache.py", "staged"): "into a private staging folder, renamed into place whole",
    ("leaderboard/submit.py", "write_entry"): "a private file, hard-linked into place (create-exclusive)",
    ("leaderboard/weights.py", "serialized"): "into memory",
}
WRITERS = {"write_text", "write_bytes", "savefig", "save", "dump", "tofile"}


def _writes_outside_write_atomically(tree, where: str):
    """(function, line) of each call that writes a file (open for writing, Path.write_*, torch.save,
    np.save, json.dump, savefig) and is not an argument of a write_atomically call."""
    def visit(node, function: str, inside: bool):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            inside = inside or name == "write_atomically"
            mode = node.args[1] if name == "open" and len(node.args) > 1 else None
            opens_for_writing = isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax")
            if not inside and (name in WRITERS or opens_for_writing):
                yield function, node.lineno
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        for child in ast.iter_child_nodes(node):
            yield from visit(child, function, inside)

    return [(where, function, line) for function, line in visit(tree, "<module>", False)
            if (where, function) not in IN_PLACE_ON_PURPOSE]


def test_every_file_the_package_writes_goes_through_write_atomically():
    """DEVELOPERS.md's rule, checked: a plot (report), the copy task's --out and the API's saved
    weights were written in place, so a crash could leave half a file."""
    package = REPO / "fewshot_mem"
    found = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        found += _writes_outside_write_atomically(ast.parse(path.read_text()), where)
    assert not found, f"written in place (use paths.write_atomically, or say why in IN_PLACE_ON_PURPOSE): {found}"


def test_make_data_links_the_shared_files_and_leaves_those_already_there(tmp_path):
    """tools/link_data.link, which `make data` and the tests' data fixture both use."""
    from link_data import SHARED_FILES, link  # tools/, put on the path by conftest

    shared, root = tmp_path / "shared", tmp_path / "root"
    for name in SHARED_FILES["omniglot"]:
        (shared / "omniglot").mkdir(parents=True, exist_ok=True)
        (shared / "omniglot" / name).write_bytes(name.encode())
    mine = root / "omniglot" / SHARED_FILES["omniglot"][1]
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"mine")
    made = link(shared, root)
    assert made == [root / "omniglot" / SHARED_FILES["omniglot"][0]] and made[0].is_symlink()
    assert made[0].read_bytes() == SHARED_FILES["omniglot"][0].encode() and mine.read_bytes() == b"mine"
    assert link(shared, root) == []  # nothing new the second time
    assert sorted(p.name for p in (shared / "omniglot").iterdir()) == sorted(SHARED_FILES["omniglot"])
