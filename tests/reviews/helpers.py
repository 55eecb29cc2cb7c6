"""Builders for the review flow tests: real git repositories, run-time secrets, a GitHub tarball server."""

from __future__ import annotations

import io
import random
import re
import string
import subprocess
import tarfile
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from bench.local_http import QuietHandler, base_url, serve, shut

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Maker",
    "GIT_AUTHOR_EMAIL": "maker@example.com",
    "GIT_COMMITTER_NAME": "Maker",
    "GIT_COMMITTER_EMAIL": "maker@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def github_token() -> str:
    """A GitHub-classic-shaped token, built at run time (never a literal in the repository)."""
    rng = random.Random()
    return "gh" + "p_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


def manifest_text(name: str, data_class: str = "public", **extra: Any) -> str:
    """A microapp.yaml for an app owned by maker@example.com."""
    doc = {"name": name, "owner": "maker@example.com", "data_class": data_class, "scopes": ["repo:read"], **extra}
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class GitRepo:
    """A real git repository in a temporary directory, committed with `commit()`."""

    path: Path

    def git(self, *args: str) -> str:
        """Run git in the repository; its stdout."""
        import os

        done = subprocess.run(
            ["git", "-c", "commit.gpgsign=false", *args],
            cwd=self.path,
            env={**os.environ, **GIT_ENV},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        """Create or replace files (paths relative to the repository)."""
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")

    def commit(self, message: str = "change") -> str:
        """Commit everything; the new commit's sha."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


def make_repo(root: Path, files: dict[str, str]) -> GitRepo:
    """A repository on branch main with `files` committed."""
    root.mkdir(parents=True)
    repo = GitRepo(root)
    repo.git("init", "-q", "-b", "main")
    repo.write(files)
    repo.commit("first")
    return repo


def tarball_of(directory: Path, top: str, extra: list[tuple[tarfile.TarInfo, bytes | None]] | None = None) -> bytes:
    """A gzip tarball of `directory` under the top-level folder `top`, as GitHub builds it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(directory, arcname=top, filter=lambda info: None if "/.git" in info.name else info)
        for info, data in extra or []:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


_COMMITS = re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([^/]+)$")
_TARBALL = re.compile(r"^/repos/([^/]+)/([^/]+)/tarball/([0-9a-f]{40})$")
_CODELOAD = re.compile(r"^/codeload/([^/]+)/([^/]+)/([0-9a-f]{40})$")


@dataclass
class FakeGitHubTarballs:
    """Speaks `GET /repos/{o}/{r}/commits/{ref}` (sha media type) and `GET /repos/{o}/{r}/tarball/{sha}`.

    Like GitHub, the tarball endpoint answers 302 to a codeload URL, which serves the archive without
    the token. `repos[(owner, repo)]` is `{"refs": {ref: sha}, "tarballs": {sha: bytes}}`.
    """

    token: str
    repos: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL, for GITHUB_API_URL."""
        assert self._server is not None
        return base_url(self._server)

    def start(self) -> None:
        """Serve on a free port from a daemon thread."""
        fake = self

        class Handler(QuietHandler):
            _send = QuietHandler.reply

            def do_GET(self) -> None:
                fake.requests.append((self.path, self.headers.get("Authorization")))
                if match := _CODELOAD.match(self.path):
                    repo = fake.repos.get((match.group(1), match.group(2)), {})
                    data = repo.get("tarballs", {}).get(match.group(3))
                    if data is None:
                        self._send(404, b"Not Found", "text/plain")
                    else:
                        self._send(200, data, "application/x-gzip")
                    return
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, b'{"message": "Bad credentials"}', "application/json")
                    return
                if match := _COMMITS.match(self.path):
                    repo = fake.repos.get((match.group(1), match.group(2)), {})
                    sha = repo.get("refs", {}).get(match.group(3))
                    accept = self.headers.get("Accept", "")
                    if sha is None or accept != "application/vnd.github.sha":
                        self._send(404 if sha is None else 415, b'{"message": "Not Found"}', "application/json")
                    else:
                        self._send(200, sha.encode(), "application/vnd.github.sha")
                    return
                if match := _TARBALL.match(self.path):
                    # Another host name, as codeload.github.com is: the client must not send the token there.
                    port = fake.url.rsplit(":", 1)[1]
                    location = f"http://localhost:{port}/codeload/{match.group(1)}/{match.group(2)}/{match.group(3)}"
                    self._send(302, b"", "text/plain", {"Location": location})
                    return
                self._send(404, b'{"message": "Not Found"}', "application/json")

        self._server = serve(Handler)

    def stop(self) -> None:
        """Stop serving."""
        shut(self._server)


def database_dump(url: str) -> str:
    """Every row of every table in the database, as text (to look for strings that must never be stored)."""
    from sqlalchemy import inspect, text

    from orchestrator.db import get_engine

    engine = get_engine(url)
    parts: list[str] = []
    with engine.connect() as conn:
        for name in inspect(engine).get_table_names():
            parts.extend(repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{name}"')))
    return "\n".join(parts)
