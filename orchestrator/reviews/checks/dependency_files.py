"""Which files of a checkout the dependency check parses: manifests, lockfiles, SBOMs.

Kept apart from dependencies.py (and importing nothing but the standard library) so that the engine can
pick the dependency files out while it reads the checkout, and load the dependency check and its
advisory index only when there is one (the pre-commit hook on a commit that touches none).
"""

from __future__ import annotations

from pathlib import PurePosixPath

LOCKFILE_NAMES: tuple[str, ...] = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
)
_SBOM_SUFFIXES = (".cdx.json", ".spdx.json")
_SBOM_NAMES = ("bom.json", "sbom.json")


def is_dependency_file(rel: str) -> bool:
    """Whether a path (relative, POSIX) is one of the manifests, lockfiles or SBOMs this check parses."""
    path = PurePosixPath(rel)
    name = path.name
    return (
        (name.startswith(("requirements", "constraints")) and name.endswith((".txt", ".in")))
        or name in ("pyproject.toml", "package.json", *LOCKFILE_NAMES, *_SBOM_NAMES)
        or name.endswith(_SBOM_SUFFIXES)
        or (path.parent.name == "requirements" and name.endswith((".txt", ".in")))
    )
