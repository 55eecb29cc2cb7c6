"""Unpacking a repository tarball safely: inside the destination only, regular files only, bounded.

GitHub's tarball holds one top-level directory (`owner-repo-sha/`); it is stripped. A member whose
path is absolute, climbs with `..`, or lands outside the destination once resolved is refused and
listed; links (symbolic or hard), devices and FIFOs are never created; files are written with
mode 0644 whatever the archive says. The policy's review limits bound what is unpacked: a file over
`max_file_kb` is skipped, and past `max_files` files or `max_repo_mb` of content (counted while
decompressing, so a compression bomb stops early) unpacking stops and says why.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from orchestrator.catalog.policy import ReviewLimits
from orchestrator.errors import IntegrationError

_CHUNK = 1024 * 1024


@dataclass
class Unpacked:
    """What extraction wrote, what it left out and why, and whether a limit cut it short."""

    files: int = 0
    bytes: int = 0
    skipped: list[dict[str, object]] = field(default_factory=list)
    truncated: str | None = None
    top: str | None = None


def _relative(name: str) -> PurePosixPath | None:
    """The member path without the archive's top-level directory; None when it is unsafe."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or "\0" in name:
        return None
    parts = path.parts[1:]  # strip owner-repo-sha/
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _inside(root: Path, target: Path) -> bool:
    resolved = target.resolve(strict=False)
    return resolved == root or root in resolved.parents


def extract_tarball(archive: Path, dest: Path, limits: ReviewLimits) -> Unpacked:
    """Unpack a (gzip) tarball into `dest` under the rules in the module docstring."""
    root = dest.resolve()
    root.mkdir(parents=True, exist_ok=True)
    out = Unpacked()
    max_file = limits.max_file_kb * 1024
    max_total = limits.max_repo_mb * 1024 * 1024
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                if out.top is None and member.name:
                    out.top = PurePosixPath(member.name).parts[0]
                rel = _relative(member.name)
                if rel is None:
                    out.skipped.append({"path": member.name[:300], "reason": "unsafe path in archive (not extracted)"})
                    continue
                if str(rel) == ".":
                    continue
                if member.isdir():
                    _mkdir(root, rel, out)
                    continue
                if member.issym() or member.islnk():
                    out.skipped.append({"path": str(rel), "reason": "link in archive (not created)"})
                    continue
                if not member.isfile():
                    out.skipped.append({"path": str(rel), "reason": "not a regular file (not created)"})
                    continue
                if member.size > max_file:
                    out.skipped.append(
                        {"path": str(rel), "reason": f"larger than {limits.max_file_kb} KB", "size": member.size}
                    )
                    continue
                if out.files >= limits.max_files:
                    out.truncated = f"more than {limits.max_files} files; the rest was not reviewed"
                    break
                if out.bytes + member.size > max_total:
                    out.truncated = f"more than {limits.max_repo_mb} MB of files; the rest was not reviewed"
                    break
                if _write(tar, member, root, rel, out):
                    out.files += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise IntegrationError(f"the repository tarball could not be unpacked: {type(exc).__name__}") from None
    return out


def _mkdir(root: Path, rel: PurePosixPath, out: Unpacked) -> None:
    target = root / rel
    if not _inside(root, target):
        out.skipped.append({"path": str(rel), "reason": "directory outside the checkout (not created)"})
        return
    target.mkdir(parents=True, exist_ok=True)


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, rel: PurePosixPath, out: Unpacked) -> bool:
    target = root / rel
    # Resolving the parent catches a path that would pass through a symlink; none are created,
    # but the check keeps this safe even if a caller pre-populated `dest`.
    if not _inside(root, target.parent) or not _inside(root, target):
        out.skipped.append({"path": str(rel), "reason": "path outside the checkout (not extracted)"})
        return False
    source = tar.extractfile(member)
    if source is None:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o644)
    written = 0
    with os.fdopen(fd, "wb") as sink:
        # The header's size is what tarfile reads, but count anyway: the budget is on bytes written.
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            sink.write(chunk)
    out.bytes += written
    return True
