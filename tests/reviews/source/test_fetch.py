"""Fetching source for a review: shallow git fetches at a commit, GitHub tarballs, and safe unpacking."""

from __future__ import annotations

import os
import secrets
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.policy import ReviewLimits
from orchestrator.config import Settings
from orchestrator.errors import IntegrationError
from orchestrator.reviews.source.fetch import choose_method, fetch_git, fetch_tarball, github_repo, scrub
from orchestrator.reviews.source.tarball import extract_tarball
from tests.reviews.helpers import FakeGitHubTarballs, make_repo, tarball_of

LIMITS = ReviewLimits()


def settings(**overrides: Any) -> Settings:
    """Settings as a worker would read them, with overrides."""
    return Settings(_env_file=None, **overrides)


@pytest.fixture
def github() -> Iterator[FakeGitHubTarballs]:
    """A local server speaking GitHub's commit and tarball endpoints."""
    server = FakeGitHubTarballs(token=secrets.token_hex(12))
    server.start()
    yield server
    server.stop()


class TestGit:
    """git fetches: a pinned commit, a branch, file:// URLs, bad repositories."""

    def test_git_does_not_inherit_the_workers_secrets(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """git runs with PATH/HOME and its own settings, never the worker's database URL or tokens."""
        from orchestrator.reviews.source.fetch import _git_env

        monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app:pw@db/orchestrator")
        monkeypatch.setenv("SLACK_BOT_TOKEN", "-".join(["xoxb", secrets.token_hex(8)]))
        env = _git_env("file:///tmp/repo", settings())
        assert "DATABASE_URL" not in env and "SLACK_BOT_TOKEN" not in env
        assert env["PATH"] == os.environ["PATH"] and env["GIT_TERMINAL_PROMPT"] == "0"

    def test_an_older_commit_is_checked_out_exactly(self, tmp_path: Path) -> None:
        """Asking for a commit gets that commit's tree, not the branch tip."""
        repo = make_repo(tmp_path / "r", {"a.py": "v1\n"})
        old = repo.git("rev-parse", "HEAD")
        repo.write({"a.py": "v2\n"})
        repo.commit()
        out = fetch_git(repo.path.as_uri(), ref=old, dest=tmp_path / "co", limits=LIMITS, settings=settings())
        assert out.commit == old and (tmp_path / "co" / "a.py").read_text() == "v1\n"
        shallow = (tmp_path / "co" / ".git" / "shallow").read_text().split()
        assert shallow == [old]  # one commit fetched, not the history

    def test_a_local_path_and_a_branch_name_work(self, tmp_path: Path) -> None:
        """A plain path and a branch name fetch the branch tip."""
        repo = make_repo(tmp_path / "r", {"a.py": "v1\n"})
        repo.git("checkout", "-q", "-b", "feature")
        repo.write({"a.py": "feature\n"})
        tip = repo.commit()
        repo.git("checkout", "-q", "main")
        out = fetch_git(str(repo.path), ref="feature", dest=tmp_path / "co", limits=LIMITS, settings=settings())
        assert out.commit == tip and (tmp_path / "co" / "a.py").read_text() == "feature\n"

    def test_a_missing_repository_is_a_permanent_error(self, tmp_path: Path) -> None:
        """git's own reason comes back as a non-retryable IntegrationError."""
        with pytest.raises(IntegrationError) as raised:
            fetch_git(str(tmp_path / "none"), ref=None, dest=tmp_path / "co", limits=LIMITS, settings=settings())
        assert type(raised.value) is IntegrationError and "git fetch failed" in raised.value.message

    def test_unsupported_schemes_never_reach_git(self, tmp_path: Path) -> None:
        """ext:: and other transports are refused before git runs."""
        with pytest.raises(IntegrationError, match="unsupported"):
            fetch_git(
                "ext::sh -c touch% /tmp/pwned", ref=None, dest=tmp_path / "co", limits=LIMITS, settings=settings()
            )

    def test_a_fetch_past_its_time_limit_leaves_no_git_process_behind(self, tmp_path: Path) -> None:
        """A server that never answers: the fetch times out (retryable) and git's remote helper is killed too."""
        import socket
        import time

        from orchestrator.errors import TransientIntegrationError

        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            url = f"https://127.0.0.1:{server.getsockname()[1]}/silent.git"
            with pytest.raises(TransientIntegrationError, match="took longer"):
                fetch_git(
                    url,
                    ref=None,
                    dest=tmp_path / "co",
                    limits=LIMITS,
                    settings=settings(review_fetch_timeout_seconds=1),
                )

            def lingering() -> list[str]:
                found = []
                for proc in Path("/proc").iterdir():
                    try:
                        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        continue
                    if url in cmdline:
                        found.append(cmdline)
                return found

            deadline = time.monotonic() + 5
            while lingering() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert lingering() == []


class TestMethod:
    """Which fetch a URL gets."""

    def test_github_urls_use_the_tarball_when_a_token_is_set(self) -> None:
        """auto: tarball for github.com with a token, git otherwise; git and github-tarball force the choice."""
        url = "https://github.com/acme/tool.git"
        assert github_repo(url, settings()) == ("acme", "tool")
        assert choose_method(url, settings()) == "git"
        assert choose_method(url, settings(github_token="t")) == "github-tarball"
        assert choose_method(url, settings(review_fetch="github-tarball")) == "github-tarball"
        assert choose_method(url, settings(github_token="t", review_fetch="git")) == "git"
        assert choose_method("/srv/repos/tool", settings(review_fetch="github-tarball")) == "git"

    def test_credentials_in_urls_are_scrubbed_from_messages(self) -> None:
        """An error quoting https://user:token@host never keeps the token."""
        assert (
            scrub("fatal: https://bot:s3cr3t@git.example.com/x failed") == "fatal: https://***@git.example.com/x failed"
        )


class TestTarball:
    """GitHub tarballs: resolved to a commit, streamed, unpacked under limits."""

    def test_a_trickling_download_is_cut_at_the_fetch_time_limit(self, tmp_path: Path) -> None:
        """A server sending a byte at a time, each within the read timeout, still meets the total limit."""
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from orchestrator.errors import TransientIntegrationError

        stop = threading.Event()

        class Trickle(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-gzip")
                self.end_headers()
                for _ in range(200):  # 20 s at most, so a regression fails instead of hanging
                    if stop.wait(0.1):
                        return
                    try:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    except OSError:
                        return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            conf = settings(
                github_api_url=f"http://127.0.0.1:{server.server_address[1]}", review_fetch_timeout_seconds=1
            )
            dest = tmp_path / "work" / "co"
            dest.parent.mkdir()
            started = time.monotonic()
            with pytest.raises(TransientIntegrationError, match="took longer"):
                fetch_tarball("acme", "tool", ref="ab" * 20, dest=dest, limits=LIMITS, settings=conf)
            assert time.monotonic() - started < 5
        finally:
            stop.set()
            server.shutdown()
            server.server_close()

    def test_the_default_branch_is_resolved_and_unpacked(self, github: FakeGitHubTarballs, tmp_path: Path) -> None:
        """HEAD resolves to a sha; the archive's top folder is stripped."""
        src = tmp_path / "src"
        (src / "pkg").mkdir(parents=True)
        (src / "pkg" / "a.py").write_text("print(1)\n")
        sha = "ab" * 20
        github.repos[("acme", "tool")] = {"refs": {"HEAD": sha}, "tarballs": {sha: tarball_of(src, "acme-tool-abab")}}
        conf = settings(github_api_url=github.url, github_token=github.token)
        dest = tmp_path / "work" / "co"
        dest.parent.mkdir()
        out = fetch_tarball("acme", "tool", ref=None, dest=dest, limits=LIMITS, settings=conf)
        assert out.commit == sha and (dest / "pkg" / "a.py").read_text() == "print(1)\n"
        assert os.listdir(dest.parent) == ["co"]  # the downloaded archive is gone

    def test_a_tarball_over_the_size_limit_is_refused(self, github: FakeGitHubTarballs, tmp_path: Path) -> None:
        """The download stops past max_repo_mb."""
        src = tmp_path / "src"
        src.mkdir()
        (src / "blob.txt").write_bytes(os.urandom(1_300_000))  # incompressible
        sha = "cd" * 20
        github.repos[("acme", "big")] = {"refs": {"main": sha}, "tarballs": {sha: tarball_of(src, "acme-big-cdcd")}}
        conf = settings(github_api_url=github.url, github_token=github.token)
        with pytest.raises(IntegrationError, match="larger than 1 MB"):
            fetch_tarball(
                "acme", "big", ref="main", dest=tmp_path / "co", limits=ReviewLimits(max_repo_mb=1), settings=conf
            )

    def test_an_unknown_ref_is_a_permanent_error(self, github: FakeGitHubTarballs, tmp_path: Path) -> None:
        """GitHub's 404 for the commit lookup is not retried."""
        conf = settings(github_api_url=github.url, github_token=github.token)
        with pytest.raises(IntegrationError, match="404"):
            fetch_tarball("acme", "none", ref="main", dest=tmp_path / "co", limits=LIMITS, settings=conf)


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x", link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, (len(data) if kind == tarfile.REGTYPE else 0), link
    return info, data


class TestUnpacking:
    """Hostile archives never write outside the checkout."""

    def test_traversal_links_and_devices_are_refused(self, tmp_path: Path) -> None:
        """`..`, absolute paths, symlinks, hard links and devices are listed as skipped; good files land."""
        src = tmp_path / "src"
        src.mkdir()
        (src / "ok.py").write_text("ok\n")
        archive = tmp_path / "evil.tar.gz"
        archive.write_bytes(
            tarball_of(
                src,
                "top",
                [
                    _member("top/../../escape.txt"),
                    _member("/etc/evil.txt"),
                    _member("top/link", tarfile.SYMTYPE, link="/etc/passwd"),
                    _member("top/hard", tarfile.LNKTYPE, link="top/ok.py"),
                    _member("top/dev", tarfile.CHRTYPE),
                    _member("top/sub/fine.txt", data=b"fine"),
                ],
            )
        )
        dest = tmp_path / "out" / "co"
        out = extract_tarball(archive, dest, LIMITS)
        written = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        assert written == ["ok.py", "sub/fine.txt"]
        assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "escape.txt").exists()
        reasons = {s["path"]: str(s["reason"]) for s in out.skipped}
        assert "unsafe path" in reasons["top/../../escape.txt"] and "unsafe path" in reasons["/etc/evil.txt"]
        assert "link" in reasons["link"] and "link" in reasons["hard"] and "not a regular file" in reasons["dev"]
        assert not any(p.is_symlink() for p in dest.rglob("*"))

    def test_limits_bound_what_is_unpacked(self, tmp_path: Path) -> None:
        """An oversized file is skipped; past max_files unpacking stops and says why."""
        src = tmp_path / "src"
        src.mkdir()
        (src / "big.txt").write_bytes(b"b" * 3000)
        for i in range(5):
            (src / f"f{i}.txt").write_text("small\n")
        archive = tmp_path / "a.tar.gz"
        archive.write_bytes(tarball_of(src, "top"))
        out = extract_tarball(archive, tmp_path / "co", ReviewLimits(max_file_kb=2, max_files=3))
        assert out.files == 3 and out.truncated and "more than 3 files" in out.truncated
        assert any(s["path"] == "big.txt" and "larger than 2 KB" in str(s["reason"]) for s in out.skipped)
