"""Packaging promises: the review checks run without the service's database and Celery code, and S3
archiving without its extra fails with a message naming the extra.

Each case runs in a fresh interpreter whose forbidden modules are poisoned (`sys.modules[name] = None`
makes any import of them raise ImportError), so nothing imported earlier by the suite can hide a leak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# The service side the checks must not need.
SERVICE_MODULES = ("sqlalchemy", "sqlmodel", "psycopg", "celery", "kombu", "redis", "fastapi", "alembic", "boto3")

CHECKS_PROBE = """
import importlib, json, pkgutil, sys
from pathlib import Path
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
import orchestrator.reviews.checks as checks
for info in pkgutil.iter_modules(checks.__path__):
    importlib.import_module(f"orchestrator.reviews.checks.{info.name}")
from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks.engine import review_directory
result = review_directory(Path(sys.argv[2]), policy=load_policy())
loaded = sorted({n.split(".")[0] for n, m in list(sys.modules.items()) if m is not None} - set(sys.stdlib_module_names))
print(json.dumps({"verdict": result.verdict, "rules": [f.rule for f in result.findings], "loaded": loaded}))
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def _closure(requirements: list[str]) -> set[str]:
    """The installed distributions these requirements pull in, transitively (normalized names)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        extras = set(req.extras) | {""}
        if name in seen and not req.extras:
            continue
        seen.add(name)
        for line in metadata.requires(req.name) or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return seen


def test_review_checks_run_without_service_dependencies(tmp_path: Path) -> None:
    """With the database and Celery side unimportable, the checks import, review a checkout and find a
    planted key, loading only distributions of the `review` dependency group."""
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "microapp.yaml").write_text(
        "name: Probe\nowner: maker@example.com\ndata_class: internal\ndescription: probe\nconnectors: []\nscopes: []\n"
    )
    key = "AKIA" + "Q3EGRT7VXK2M5NWP"  # split so the repository itself holds no key-shaped literal
    (app / "src" / "settings.py").write_text(f"AWS_ACCESS_KEY_ID = '{key}'\n")
    proc = _run(CHECKS_PROBE, json.dumps(["orchestrator.db", *SERVICE_MODULES]), str(app))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"] == "fail" and out["rules"], out

    group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["review"]
    allowed = _closure(group)
    providers = metadata.packages_distributions()
    # our own packages, and interpreter start-up hooks such as setuptools' _distutils_hack, are not dependencies
    third_party = [m for m in out["loaded"] if m in providers and m != "orchestrator" and not m.startswith("_")]
    used = {d.lower().replace("_", "-") for m in third_party for d in providers[m]}
    assert used <= allowed, f"the checks load distributions outside the review group: {sorted(used - allowed)}"


def test_s3_archive_without_boto3_names_the_extra() -> None:
    """An s3:// archive URL without boto3 installed is a ConfigError telling which extra to install."""
    code = (
        "import sys\n"
        "sys.modules['boto3'] = None\n"
        "from orchestrator.errors import ConfigError\n"
        "from orchestrator.integrations.archive import store_from_url\n"
        "try:\n"
        "    store_from_url('s3://archives/apps')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert "microapp-orchestrator[s3]" in proc.stdout and "s3://archives" in proc.stdout


def _pinned(lock: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a lock file (normalized names)."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, rest = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = rest.split()[0].rstrip(";")
    return pins


def test_lock_files_pin_every_declared_dependency() -> None:
    """Each dependency of pyproject.toml is pinned, at a version it accepts, in the lock the Makefile installs
    (a dependency added without `make lock` would otherwise be missing from CI and the image)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    expected = {
        "lock.txt": project["dependencies"],
        "dev-lock.txt": project["dependencies"] + extras["s3"] + extras["dev"],
    }
    for lock, declared in expected.items():
        pins = _pinned(ROOT / "requirements" / lock)
        for line in declared:
            req = Requirement(line)
            name = req.name.lower().replace("_", "-")
            if name == project["name"]:
                continue  # the self-reference that pulls in an extra
            assert name in pins, f"{req.name} is not in requirements/{lock}; run `make lock`"
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"requirements/{lock} pins {name}=={pins[name]}, outside {req}; run `make lock`"
            )
