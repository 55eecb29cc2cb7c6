"""Policy files: the shipped default, `orchestrator policy check`, and start-up refusing a bad file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from orchestrator.catalog import policy
from orchestrator.catalog.models import DataClass
from orchestrator.catalog.policy import DEFAULT_POLICY_PATH, get_policy, load_policy
from orchestrator.cli import build
from orchestrator.config import get_settings
from orchestrator.errors import ConfigError

DATA = Path(__file__).parent / "data"

# file → (field the error must name, words of the reason)
BAD_FILES = {
    "policy_bad_type.yaml": ("data_classes.restricted.sandbox_ttl_days", "valid number"),
    "policy_bad_negative.yaml": ("data_classes.internal.owner_left_grace_days", "greater than 0"),
    "policy_bad_missing_class.yaml": ("data_classes", "missing data class(es): regulated"),
    "policy_bad_unknown_key.yaml": ("data_classes.internal.sandbox_tll_days", "Extra inputs are not permitted"),
    "policy_bad_escalation.yaml": (
        "data_classes.regulated.approval_escalation_hours",
        "must be greater than approval_reminder_hours",
    ),
    "policy_bad_yaml.yaml": ("policy_bad_yaml.yaml", "not valid YAML"),
    "policy_bad_not_mapping.yaml": ("policy_bad_not_mapping.yaml", "must be a mapping at the top level"),
}


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    """Settings and policy caches are empty before and after the test, so env changes take effect and do not leak."""
    get_settings.cache_clear()
    policy._cached.clear()
    yield
    get_settings.cache_clear()
    policy._cached.clear()


def run_cli(*args: str) -> Result:
    """Invoke the real CLI in-process."""
    return CliRunner().invoke(build(), list(args))


def test_shipped_default_loads() -> None:
    """The default policy validates and covers every data class with sane timers."""
    loaded = load_policy(DEFAULT_POLICY_PATH)
    assert set(loaded.data_classes) == set(DataClass)
    for data_class in DataClass:
        rules = loaded.for_class(data_class)
        assert rules.approval_escalation_hours > rules.approval_reminder_hours
        assert rules.expiry_notice_days == sorted(rules.expiry_notice_days, reverse=True)
    assert loaded.for_class("regulated").sandbox_ttl_days < loaded.for_class("public").sandbox_ttl_days


def test_get_policy_without_policy_file_is_default(monkeypatch: pytest.MonkeyPatch, fresh_caches: None) -> None:
    """With POLICY_FILE unset the process runs on the shipped default."""
    monkeypatch.delenv("POLICY_FILE", raising=False)
    assert get_policy() == load_policy(DEFAULT_POLICY_PATH)


def test_get_policy_reads_policy_file(monkeypatch: pytest.MonkeyPatch, fresh_caches: None) -> None:
    """POLICY_FILE points the process at another policy."""
    monkeypatch.setenv("POLICY_FILE", str(DATA / "policy_good.yaml"))
    assert get_policy().for_class("restricted").sandbox_ttl_days == 21


def test_check_prints_effective_policy() -> None:
    """`policy check` on a good file prints the policy with merges resolved and defaults filled in."""
    result = run_cli("policy", "check", str(DATA / "policy_good.yaml"))
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert set(printed["data_classes"]) == {d.value for d in DataClass}
    assert printed["data_classes"]["regulated"]["sandbox_ttl_days"] == 7
    assert printed["data_classes"]["regulated"]["review_cadence_days"] == 120  # merged from public
    assert printed["data_classes"]["public"]["expiry_notice_days"] == [10, 5, 1]  # sorted, latest last
    assert printed["notifications"] == {"digest_threshold": 5, "digest_window_minutes": 10}  # default
    assert printed["sunset"]["revoke_max_attempts"] == 5  # default
    assert printed["approved_llm_connectors"] == ["openai-proxy"]


def test_check_default_round_trips() -> None:
    """The printed effective policy is itself a valid policy equal to the one checked."""
    result = run_cli("policy", "check", str(DEFAULT_POLICY_PATH))
    assert result.exit_code == 0, result.output
    assert policy.parse_policy(yaml.safe_load(result.stdout)) == load_policy(DEFAULT_POLICY_PATH)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_check_bad_file_names_field_and_reason(name: str) -> None:
    """Each kind of bad field makes `policy check` exit non-zero with the field and the reason, no traceback."""
    field, reason = BAD_FILES[name]
    result = run_cli("policy", "check", str(DATA / name))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert field in result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("path", ["does-not-exist.yaml", "."], ids=["missing", "directory"])
def test_check_unreadable_file(path: str, tmp_path: Path) -> None:
    """A missing or unreadable policy file is reported with its path and the reason."""
    target = tmp_path / path
    result = run_cli("policy", "check", str(target))
    assert result.exit_code == 2
    assert str(target) in result.stderr
    assert "cannot read the policy file" in result.stderr


def test_empty_file_is_refused(tmp_path: Path) -> None:
    """An empty policy file is not silently the default."""
    empty = tmp_path / "policy.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_policy(empty)


def test_config_error_names_every_bad_field(tmp_path: Path) -> None:
    """Several bad fields in one file are all reported, each with its path."""
    raw = yaml.safe_load((DATA / "policy_good.yaml").read_text())
    raw["data_classes"]["public"]["sandbox_ttl_days"] = 0
    raw["data_classes"]["internal"]["escalation"]["max_scopes"] = -1
    raw["data_classes"]["restricted"]["expiry_notice_days"] = [7, 7]
    raw["surprise"] = True
    with pytest.raises(ConfigError) as caught:
        policy.parse_policy(raw)
    message = caught.value.message
    for field in (
        "data_classes.public.sandbox_ttl_days",
        "data_classes.internal.escalation.max_scopes",
        "data_classes.restricted.expiry_notice_days",
        "surprise",
    ):
        assert field in message


@pytest.mark.parametrize("name", ["policy_bad_negative.yaml", "policy_bad_yaml.yaml"])
def test_api_refuses_to_start_with_bad_policy(name: str, monkeypatch: pytest.MonkeyPatch, fresh_caches: None) -> None:
    """create_app() raises ConfigError naming the field when POLICY_FILE is bad."""
    from orchestrator.http.app import create_app

    monkeypatch.setenv("POLICY_FILE", str(DATA / name))
    field, reason = BAD_FILES[name]
    with pytest.raises(ConfigError) as caught:
        create_app()
    assert field in caught.value.message
    assert reason in caught.value.message


def test_api_command_refuses_to_start_with_bad_policy(monkeypatch: pytest.MonkeyPatch, fresh_caches: None) -> None:
    """`orchestrator api` exits 2 with the field and reason before it binds a port."""
    monkeypatch.setenv("POLICY_FILE", str(DATA / "policy_bad_unknown_key.yaml"))
    result = run_cli("api", "--port", "1")
    assert result.exit_code == 2
    assert "data_classes.internal.sandbox_tll_days: Extra inputs are not permitted" in result.stderr
