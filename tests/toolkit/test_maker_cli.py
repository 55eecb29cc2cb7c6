"""`microapp-review` (orchestrator.reviews.checks.maker) in process: bad input exits 2 with the reason, the
outputs are those of `orchestrator review`, `--files` reviews only the files named."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from orchestrator.reviews.checks.maker import run

MANIFEST = "name: Tool\nowner: maker@example.com\ndata_class: internal\nscopes: [files:read]\n"


def stripe_key() -> str:
    rng = random.Random(3)
    return "sk" + "_live_" + "".join(rng.choice(string.ascii_letters) for _ in range(24))


def make_app(root: Path) -> Path:
    root.mkdir()
    (root / "microapp.yaml").write_text(MANIFEST)
    (root / "main.py").write_text("print('ok')\n")
    (root / "pay.py").write_text(f"STRIPE = '{stripe_key()}'\n")
    return root


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["{tmp}/missing"], "does not exist"),
        (["{tmp}/app/main.py"], "is not a directory"),
        (["{tmp}/app", "--data-class", "secret"], "unknown data class 'secret'"),
        (["{tmp}/app", "{tmp}/app"], "name one folder"),
        (["--files", "--root", "{tmp}/missing", "a.py"], "does not exist"),
    ],
)
def test_bad_input_exits_two_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], reason: str
) -> None:
    make_app(tmp_path / "app")
    assert run([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and reason in err and "Traceback" not in err


def test_files_mode_reviews_only_the_named_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path / "app")
    assert run(["--files", "--root", str(app), "main.py", "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["verdict"] == "pass" and clean["stats"]["files_scanned"] == 1

    assert run(["--files", "--root", str(app), "main.py", "pay.py"]) == 1
    out = capsys.readouterr().out
    assert "verdict: fail" in out and "pay.py:1" in out and "BLOCKS" in out and "fix:" in out
    assert stripe_key() not in out


def test_sarif_output_names_the_tool_and_the_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path / "app")
    assert run([str(app), "--sarif"]) == 1
    log = json.loads(capsys.readouterr().out)
    (sarif_run,) = log["runs"]
    assert log["version"] == "2.1.0" and sarif_run["tool"]["driver"]["name"]
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for r in sarif_run["results"] for loc in r["locations"]}
    assert "pay.py" in uris
