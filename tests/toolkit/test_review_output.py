"""`orchestrator review .` for makers: person output, `--sarif` against a SARIF 2.1.0 schema subset, exit codes,
and the repository's `.pre-commit-hooks.yaml`.

The full OASIS schema is not vendored; `SARIF_SUBSET` below encodes the parts of SARIF 2.1.0 this output
uses (required properties, the level and suppression-kind enumerations, 1-based regions), written from
the specification.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner, Result

from orchestrator.cli.review import app

REPO = Path(__file__).resolve().parents[2]
MANIFEST = "name: Tool\nowner: maker@example.com\ndata_class: internal\nscopes: [files:read]\n"

_MESSAGE = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
SARIF_SUBSET = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "$schema": {"type": "string", "format": "uri"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "shortDescription": _MESSAGE,
                                                "help": _MESSAGE,
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": -1},
                                "level": {"enum": ["none", "note", "warning", "error"]},
                                "message": _MESSAGE,
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "properties": {
                                                            "uri": {"type": "string"},
                                                            "uriBaseId": {"type": "string"},
                                                        },
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "properties": {"startLine": {"type": "integer", "minimum": 1}},
                                                    },
                                                },
                                            }
                                        },
                                    },
                                },
                                "partialFingerprints": {"type": "object", "additionalProperties": {"type": "string"}},
                                "suppressions": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["kind"],
                                        "properties": {"kind": {"enum": ["inSource", "external"]}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def aws_key() -> str:
    rng = random.Random(7)
    return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))


def make_app(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    (root / "microapp.yaml").write_text(MANIFEST)
    for rel, text in files.items():
        (root / rel).write_text(text)
    return root


def review(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_person_output_says_where_what_how_to_fix_and_how_to_allow(tmp_path: Path) -> None:
    key = aws_key()
    root = make_app(tmp_path / "a", {"main.py": f"print('hi')\nKEY = '{key}'\n"})
    result = review(str(root))
    assert result.exit_code == 1
    assert "verdict: fail" in result.output
    assert "main.py:2  CRITICAL  secrets/aws-access-key-id  [BLOCKS]" in result.output
    assert "fix:  delete the value" in result.output
    assert "orchestrator: allow-secret" in result.output
    assert key not in result.output


def test_an_allowed_secret_no_longer_blocks(tmp_path: Path) -> None:
    root = make_app(tmp_path / "a", {"main.py": f"KEY = '{aws_key()}'  # orchestrator: allow-secret test fixture\n"})
    result = review(str(root))
    assert result.exit_code == 0, result.output
    assert "[allowed: test fixture]" in result.output


def test_sarif_is_valid_and_carries_locations_and_suppressions(tmp_path: Path) -> None:
    key = aws_key()
    root = make_app(
        tmp_path / "a",
        {
            "main.py": f"KEY = '{key}'\n",
            "fixture.py": f"KEY = '{key[:-1]}Q'  # orchestrator: allow-secret fixture\n",
            "requirements.txt": "requests>=2.0\n",
        },
    )
    result = review(str(root), "--sarif")
    assert result.exit_code == 1
    assert key not in result.output
    doc = json.loads(result.output)
    jsonschema.validate(doc, SARIF_SUBSET, format_checker=jsonschema.FormatChecker())
    run = doc["runs"][0]
    assert run["properties"]["verdict"] == "fail"
    by_file = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in run["results"] if r["locations"]
    }
    secret = by_file["main.py"]
    assert secret["level"] == "error" and secret["ruleId"] == "secrets/aws-access-key-id"
    assert secret["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert by_file["fixture.py"]["suppressions"] == [{"kind": "inSource", "justification": "fixture"}]
    rules = run["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in run["results"])


def test_json_and_sarif_together_is_bad_input(tmp_path: Path) -> None:
    result = review(str(make_app(tmp_path / "a", {})), "--json", "--sarif")
    assert result.exit_code == 2 and "choose one" in result.output


def test_pre_commit_hook_definition() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "microapp-review")
    # the light command, on the staged files pre-commit passes; pre-commit installs nothing (see the file)
    assert hook["entry"] == "microapp-review --files"
    assert hook["language"] == "system" and hook["pass_filenames"] is True


def test_a_maker_without_a_data_dir_caches_advisories_in_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.reviews.checks.advisory_sets import user_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert user_cache_dir() == tmp_path / "cache" / "microapp-orchestrator" / "advisories"
    root = make_app(tmp_path / "a", {"main.py": "print('hi')\n"})
    assert review(str(root)).exit_code == 0
    assert sorted(p.name for p in root.iterdir()) == ["main.py", "microapp.yaml"]  # nothing written into the app
