"""Walking a checkout safely: bounded, never outside the tree, text files only.

Symlinks are never followed (a link to `/etc/passwd` or to `../../secrets` is listed as skipped, not
read), `.git/` is not entered, binary and oversized files are skipped and listed, and the repository
size, file count and time budget from the policy's `review_limits` are enforced.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.catalog.policy import ReviewLimits
from orchestrator.reviews.checks.findings import ReviewTimeout

SKIP_DIRS = frozenset({".git", ".hg", ".svn"})
# Third-party and generated trees: their content is the dependency check's business, not the maker's.
VENDORED_DIRS = frozenset(
    {
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
        "bower_components",
    }
)
BINARY_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".ico",
        ".webp",
        ".pdf",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".7z",
        ".tar",
        ".jar",
        ".war",
        ".whl",
        ".egg",
        ".so",
        ".dll",
        ".dylib",
        ".exe",
        ".bin",
        ".pyc",
        ".pyo",
        ".class",
        ".o",
        ".a",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".eot",
        ".mp3",
        ".mp4",
        ".mov",
        ".avi",
        ".wav",
        ".sqlite",
        ".db",
        ".parquet",
        ".pkl",
        ".npy",
        ".onnx",
        ".pt",
    }
)
_SNIFF_BYTES = 8192


class Deadline:
    """A point in monotonic time after which the review gives up with ReviewTimeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def check(self) -> None:
        """Raise ReviewTimeout once the budget is spent."""
        if time.monotonic() > self.expires:
            raise ReviewTimeout(f"review exceeded its time budget of {self.seconds:g} s")


@dataclass
class SourceFile:
    """A regular text file inside the checkout, with its path relative to the root (POSIX form)."""

    rel: str
    path: Path
    size: int


@dataclass
class Inventory:
    """What a walk found: readable files, what it skipped and why, and whether a limit cut it short."""

    files: list[SourceFile] = field(default_factory=list)
    skipped: list[dict[str, object]] = field(default_factory=list)
    total_bytes: int = 0
    truncated: str | None = None


def _walk(root: Path, deadline: Deadline, first: tuple[str, ...]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        deadline.check()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                # Root files named in `first` (the manifest) come first so no limit can cut them off.
                entries = sorted(it, key=lambda e: (rel_dir != "" or e.name not in first, e.name))
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            yield rel, entry
            if entry.is_dir(follow_symlinks=False) and entry.name not in SKIP_DIRS | VENDORED_DIRS:
                stack.append(rel)
        stack.sort(reverse=True)  # depth-first in name order: deterministic output


def walk_checkout(
    root: Path, limits: ReviewLimits, deadline: Deadline, *, first: tuple[str, ...] = ("microapp.yaml", "microapp.yml")
) -> Inventory:
    """List the reviewable files of a checkout within the policy's limits (files named in `first` lead)."""
    root = root.resolve()
    inv = Inventory()
    max_file = limits.max_file_kb * 1024
    max_total = limits.max_repo_mb * 1024 * 1024
    for rel, entry in _walk(root, deadline, first):
        if entry.is_symlink():
            inv.skipped.append({"path": rel, "reason": _symlink_reason(root, entry)})
            continue
        if entry.is_dir(follow_symlinks=False):
            if entry.name in VENDORED_DIRS:
                inv.skipped.append({"path": rel + "/", "reason": "vendored or generated directory"})
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            inv.skipped.append({"path": rel, "reason": "not a regular file"})
            continue
        if os.path.splitext(entry.name)[1].lower() in BINARY_EXTENSIONS:
            inv.skipped.append({"path": rel, "reason": "binary file", "size": st.st_size})
            continue
        if st.st_size > max_file:
            inv.skipped.append({"path": rel, "reason": f"larger than {limits.max_file_kb} KB", "size": st.st_size})
            continue
        if len(inv.files) >= limits.max_files:
            inv.truncated = f"more than {limits.max_files} files; the rest was not reviewed"
            break
        if inv.total_bytes + st.st_size > max_total:
            inv.truncated = f"more than {limits.max_repo_mb} MB of files; the rest was not reviewed"
            break
        inv.files.append(SourceFile(rel, root / rel, st.st_size))
        inv.total_bytes += st.st_size
    return inv


def _symlink_reason(root: Path, entry: os.DirEntry[str]) -> str:
    try:
        target = Path(entry.path).resolve(strict=False)
    except (OSError, RuntimeError):
        return "symlink (unresolvable; not followed)"
    if target != root and root not in target.parents:
        return "symlink pointing outside the checkout (not followed)"
    return "symlink (not followed; its target is reviewed at its own path)"


def read_text(file: SourceFile) -> str | None:
    """The file's text, or None when it is binary. Opens without following a symlink swapped in late."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(file.path, flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(file.size + 1)
    if b"\0" in data[:_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")
