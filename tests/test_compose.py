"""compose.yaml against the Compose Specification schema, and its commands against our CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml

from orchestrator.cli import build
from orchestrator.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE = REPO_ROOT / "compose.yaml"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
OUR_SERVICES = ("migrate", "api", "worker", "scheduler")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml as Compose reads it (YAML anchors and merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


class NotOurCommand(ValueError):
    """A compose command that the orchestrator CLI would refuse."""


def resolve_command(args: list[str]) -> Any:
    """The CLI command `args` names under `orchestrator`, options parsed; NotOurCommand if it would not run.

    Typer ships its own copy of click, so groups are recognised by their `get_command` method and
    usage errors by click's exit code 2 rather than by class.
    """
    if not args or args[0] != "orchestrator":
        raise NotOurCommand(f"{args} does not run the orchestrator CLI")
    command: Any = typer.main.get_command(build())
    rest = args[1:]
    while hasattr(command, "get_command"):
        if not rest:
            raise NotOurCommand(f"{args} stops at the command group {command.name!r}")
        sub = command.get_command(typer.Context(command, info_name=command.name), rest[0])
        if sub is None:
            raise NotOurCommand(f"no command {rest[0]!r} in {' '.join(args)}")
        command, rest = sub, rest[1:]
    try:
        # Parsing runs the option types and choices (ints, enums) without invoking the command.
        command.make_context(command.name, list(rest))
    except Exception as exc:
        if getattr(exc, "exit_code", None) == 2:
            raise NotOurCommand(f"{' '.join(args)}: {exc}") from exc
        raise
    return command


def test_compose_matches_the_specification(compose: dict[str, Any]) -> None:
    """compose.yaml is valid under the Compose Specification JSON schema."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_expected_services_exist(compose: dict[str, Any]) -> None:
    """redis, postgres, the one-shot migrate, api, worker and scheduler are all there."""
    assert set(compose["services"]) >= {"redis", "postgres", *OUR_SERVICES}
    assert set(_ours(compose)) == set(OUR_SERVICES)


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_every_command_is_a_real_cli_command(compose: dict[str, Any], service: str) -> None:
    """Each service of our image runs an existing `orchestrator` sub-command with options it accepts."""
    command = compose["services"][service]["command"]
    assert isinstance(command, list), "exec form, so no shell sits between the signal and the process"
    resolve_command(command)


def test_resolve_command_refuses_what_does_not_exist() -> None:
    """The checker itself rejects an unknown command and an unknown option."""
    with pytest.raises(NotOurCommand, match="no-such-command"):
        resolve_command(["orchestrator", "no-such-command"])
    with pytest.raises(NotOurCommand, match="no-such-option"):
        resolve_command(["orchestrator", "api", "--no-such-option"])
    with pytest.raises(NotOurCommand, match="port"):
        resolve_command(["orchestrator", "api", "--port", "eighty"])
    with pytest.raises(NotOurCommand, match="stops at"):
        resolve_command(["orchestrator", "policy"])


def test_one_image_and_healthy_dependencies(compose: dict[str, Any]) -> None:
    """Our services share one image, wait for healthy databases and for a successful migration."""
    ours = _ours(compose)
    assert len({svc["image"] for svc in ours.values()}) == 1
    assert all(svc["build"]["dockerfile"] == "Dockerfile" for svc in ours.values())
    for name, svc in ours.items():
        deps = svc["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        if name != "migrate":
            assert deps["redis"]["condition"] == "service_healthy", name
            assert deps["migrate"]["condition"] == "service_completed_successfully", name
    for name in ("postgres", "redis", "api"):
        assert compose["services"][name]["healthcheck"]["test"], name
    assert "pg_isready" in compose["services"]["postgres"]["healthcheck"]["test"]
    assert "/healthz" in " ".join(compose["services"]["api"]["healthcheck"]["test"])


def test_configuration_names_real_settings(compose: dict[str, Any]) -> None:
    """Every variable given to our services is a setting the processes read, and the secrets are required."""
    known = {name.upper() for name in Settings.model_fields}
    for name, svc in _ours(compose).items():
        unknown = set(svc["environment"]) - known
        assert not unknown, f"{name}: {sorted(unknown)} are not fields of orchestrator.config.Settings"
    env = compose["services"]["api"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["BROKER_URL"].startswith("redis://redis:6379/")
    required = re.findall(r"\$\{(\w+):\?", COMPOSE.read_text(encoding="utf-8"))
    assert {"POSTGRES_PASSWORD", "CREDENTIAL_KEY"} <= set(required)


def test_dockerfile_builds_a_slim_non_root_image() -> None:
    """The Dockerfile starts from python:3.11-slim, installs the package and drops root."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
