"""`pip install .` ships everything the processes read at run time: modules, YAML, migrations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "workers", "schedules")


def source_files() -> set[str]:
    """Every file of our packages as a wheel path, caches left out."""
    found = set()
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                found.add(path.relative_to(REPO_ROOT).as_posix())
    return found


@pytest.mark.slow
def test_the_wheel_holds_every_package_file(tmp_path: Path) -> None:
    """A wheel built from what the Dockerfile copies contains each module and data file."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("microapp_orchestrator-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(source_files() - names)
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data]): {missing}"
    assert "orchestrator/catalog/default_policy.yaml" in names and "orchestrator/catalog/demo_catalog.yaml" in names
    assert any(n.startswith("orchestrator/migrations/versions/0001") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "orchestrator = orchestrator.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
