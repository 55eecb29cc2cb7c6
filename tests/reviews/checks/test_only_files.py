"""`review_directory(only=...)`: the pre-commit hook's review of the staged files.

Only the named files are scanned; the manifest is read whether or not it is named; the dependency check,
and with it the advisory index, is loaded only when a dependency file is among the files.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks.engine import review_directory

REPO = Path(__file__).resolve().parents[3]
MANIFEST = "name: Probe\nowner: maker@example.com\ndata_class: restricted\ndescription: probe\nscopes: []\n"


def aws_key() -> str:
    rng = random.Random(7)
    return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))


def make_app(root: Path) -> Path:
    root.mkdir()
    (root / "microapp.yaml").write_text(MANIFEST)
    (root / "requirements.txt").write_text("requests==2.19.1\n")
    (root / "a.py").write_text(f"KEY = '{aws_key()}'\n")
    (root / "b.py").write_text("TIMEOUT_SECONDS = 10\n")
    return root


def test_only_the_named_files_are_scanned_and_the_manifest_still_counts(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    result = review_directory(app, policy=load_policy(), only=["b.py"])
    assert result.stats["files_scanned"] == 1
    assert [f for f in result.findings if f.check in ("secrets", "dependencies")] == []
    assert result.stats["data_class"] == "restricted"  # from microapp.yaml, which was not named
    assert result.stats["advisories"]["notes"] == ["no dependency file among the files reviewed"]


def test_a_named_dependency_file_and_secret_are_reviewed(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    # Paths as pre-commit or a person might give them: relative with ./, or absolute.
    result = review_directory(app, policy=load_policy(), only=["./a.py", str(app / "requirements.txt")])
    assert result.stats["files_scanned"] == 2
    found = {(f.check, f.rule, f.file) for f in result.findings}
    assert ("secrets", "aws-access-key-id", "a.py") in found
    assert ("dependencies", "vulnerable-dependency", "requirements.txt") in found
    assert result.verdict == "fail"


def test_without_a_dependency_file_the_dependency_check_is_not_loaded(tmp_path: Path) -> None:
    """Measured from a fresh process: what the hook pays for on a commit that touches no dependency file."""
    app = make_app(tmp_path / "app")
    probe = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from orchestrator.catalog.policy import load_policy\n"
        "from orchestrator.reviews.checks.engine import review_directory\n"
        "names = sys.argv[2:]\n"
        "review_directory(Path(sys.argv[1]), policy=load_policy(), only=names)\n"
        "print(json.dumps([m for m in ('orchestrator.reviews.checks.dependencies',"
        " 'orchestrator.reviews.checks.advisory_sets') if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    loaded = {}
    for label, names in (("code", ["b.py"]), ("lockfile", ["b.py", "requirements.txt"])):
        done = subprocess.run(
            [sys.executable, "-c", probe, str(app), *names], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        loaded[label] = json.loads(done.stdout)
    assert loaded["code"] == []
    assert len(loaded["lockfile"]) == 2
