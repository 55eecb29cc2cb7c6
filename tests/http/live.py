"""A real API process (uvicorn) on a migrated SQLite file, with tokens created in that database."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import Proc, start_api

ROLES = {"admin": "admin@example.com", "approver": "approver@example.com", "maker": "maker@example.com"}


@dataclass
class LiveApi:
    """A running API: its base URL, database URL, process, and one token per role."""

    url: str
    database_url: str
    proc: Proc
    tokens: dict[str, str] = field(default_factory=dict)

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON line the API has logged so far (other output is skipped)."""
        lines = []
        for raw in self.proc.log().splitlines():
            try:
                parsed = json.loads(raw)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                lines.append(parsed)
        return lines


@contextmanager
def live_api(workdir: Path, sqlite_template: Path) -> Iterator[LiveApi]:
    """Copy the migrated template, create tokens in it, run the API on it; stop it afterwards."""
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token
    from orchestrator.db import get_engine, session_scope

    db_path = workdir / "orchestrator.db"
    shutil.copy(sqlite_template, db_path)
    database_url = f"sqlite:///{db_path}"
    tokens = {}
    with session_scope(url=database_url) as session:
        for role, email in ROLES.items():
            tokens[role] = create_token(session, name=role, role=Role(role), person_email=email, actor="test")
    get_engine(database_url).dispose()
    env = {"DATABASE_URL": database_url, "BROKER_URL": "memory://", "LOG_LEVEL": "INFO", "LOG_JSON": "true"}
    proc, url = start_api(env=env, log_path=workdir / "api.log")
    try:
        yield LiveApi(url=url, database_url=database_url, proc=proc, tokens=tokens)
    finally:
        proc.stop()
