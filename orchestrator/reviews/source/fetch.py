"""Getting an app's source at a commit: a shallow `git` fetch, or a tarball from the GitHub API.

Only `https://` repositories on REVIEW_REPO_HOSTS, and local paths or `file://` URLs under
REVIEW_LOCAL_ROOT when it is set, are fetched (`orchestrator.catalog.manifest.repo_refusal`): a
manifest must not make the worker read its host's files or internal HTTP services.

- **git** (`https://`, and local paths / `file://`): `git init`, `git fetch --depth 1
  <url> <commit or branch>`, checkout of FETCH_HEAD — so a commit is fetched without cloning
  history. Git runs with a time limit, `GIT_TERMINAL_PROMPT=0` (never waits for a password), no
  hooks, and the `ext::` transport refused. With GITHUB_TOKEN set, a GitHub URL gets an
  Authorization header through `GIT_CONFIG_*` variables (not argv, which other users can read).
- **github-tarball** (`https://github.com/OWNER/REPO` URLs, or the host of GITHUB_API_URL for GHES):
  the ref is resolved to a commit (`GET /repos/{o}/{r}/commits/{ref}`, sha media type), then
  `GET /repos/{o}/{r}/tarball/{sha}` is streamed to disk (at most `max_repo_mb`) and unpacked by
  `orchestrator.reviews.source.tarball` (no path traversal, no links, size limits).

REVIEW_FETCH picks: `git`, `github-tarball`, or `auto` (the tarball for GitHub URLs when
GITHUB_TOKEN is set, else git). Errors are IntegrationError (the repository is wrong: not retried)
or TransientIntegrationError (network, time limit: the review is retried).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx

from orchestrator.catalog.manifest import repo_refusal
from orchestrator.catalog.policy import ReviewLimits
from orchestrator.config import Settings
from orchestrator.errors import IntegrationError, TransientIntegrationError
from orchestrator.reviews.source.tarball import extract_tarball

_SHA = re.compile(r"^[0-9a-f]{40}$")
_USERINFO = re.compile(r"://[^/@\s]+@")
_TRANSIENT_GIT = re.compile(
    r"could not resolve host|connection (refused|reset|timed out)|timed out|temporarily unavailable|"
    r"the remote end hung up|early eof|http 5\d\d|returned error: 5\d\d|rpc failed",
    re.IGNORECASE,
)


@dataclass
class Checkout:
    """A fetched source tree, the commit it is at, and what fetching left out."""

    path: Path
    commit: str | None
    method: str
    skipped: list[dict[str, object]] = field(default_factory=list)
    truncated: str | None = None


def scrub(text: str) -> str:
    """Remove credentials embedded in URLs (`https://user:token@host`) from a message."""
    return _USERINFO.sub("://***@", text)


def github_repo(repo_url: str, settings: Settings) -> tuple[str, str] | None:
    """(owner, repo) when `repo_url` is a GitHub (or GITHUB_API_URL's GHES host) https URL."""
    parsed = urlparse(repo_url)
    if parsed.scheme != "https" or not parsed.hostname:
        return None
    api_host = urlparse(settings.github_api_url).hostname
    hosts = {"github.com", "www.github.com"} | ({api_host} if api_host and api_host != "api.github.com" else set())
    if parsed.hostname.lower() not in hosts:
        return None
    parts = [p for p in parsed.path.split("/") if p]
    if len(parts) < 2:
        return None
    repo = parts[1][:-4] if parts[1].endswith(".git") else parts[1]
    return parts[0], repo


def choose_method(repo_url: str, settings: Settings) -> str:
    """git or github-tarball, per REVIEW_FETCH and the URL."""
    if settings.review_fetch == "git":
        return "git"
    if github_repo(repo_url, settings) is None:
        return "git"
    if settings.review_fetch == "github-tarball":
        return "github-tarball"
    return "github-tarball" if settings.github_token else "git"


def fetch_source(repo_url: str, *, ref: str | None, dest: Path, limits: ReviewLimits, settings: Settings) -> Checkout:
    """Fetch `repo_url` at `ref` (a commit sha, a branch, or None for the default branch) into `dest`.

    The repository is checked against REVIEW_REPO_HOSTS / REVIEW_LOCAL_ROOT again here, not only at
    registration: a URL stored before the rule, or changed since by a webhook, is refused the same way.
    """
    refusal = repo_refusal(repo_url, settings)
    if refusal:
        raise IntegrationError(f"repository refused: {refusal}")
    if choose_method(repo_url, settings) == "github-tarball":
        found = github_repo(repo_url, settings)
        assert found is not None
        return fetch_tarball(found[0], found[1], ref=ref, dest=dest, limits=limits, settings=settings)
    return fetch_git(repo_url, ref=ref, dest=dest, limits=limits, settings=settings)


# ---------------------------------------------------------------------------------------- git


def _git_url(repo_url: str) -> str:
    if repo_url.startswith("/"):
        return Path(repo_url).as_uri()  # file:// so that --depth applies (a plain path ignores it)
    scheme = urlparse(repo_url).scheme
    if repo_url.startswith("git@") or scheme in ("https", "http", "ssh", "git", "file"):
        return repo_url
    raise IntegrationError(f"unsupported repository URL scheme: {scheme or repo_url[:20]!r}")


_GIT_ENV_PASSTHROUGH = frozenset(
    {"PATH", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "SSH_AUTH_SOCK",
     "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}
)  # fmt: skip


def _git_env(repo_url: str, settings: Settings) -> dict[str, str]:
    # Only what git needs from our environment: never the worker's database URL or tokens.
    env = {key: value for key, value in os.environ.items() if key in _GIT_ENV_PASSTHROUGH}
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "true",  # answers any credential prompt with nothing
            "GIT_CONFIG_NOSYSTEM": "1",
            # https only (and file when local repositories are allowed): redirects and submodules included.
            "GIT_ALLOW_PROTOCOL": "file:https" if settings.review_local_root else "https",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            "LC_ALL": "C",
        }
    )
    config = [("core.hooksPath", os.devnull), ("advice.detachedHead", "false"), ("protocol.ext.allow", "never")]
    if settings.github_token and github_repo(repo_url, settings):
        basic = base64.b64encode(f"x-access-token:{settings.github_token.get_secret_value()}".encode()).decode()
        config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def _git(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    try:
        # Its own process group: on timeout the remote helpers (git-remote-http, ssh) are killed with
        # git, or they would linger on a server that never answers.
        process = subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise IntegrationError("git is not installed on this worker") from None
    with process:
        try:
            stdout, stderr = process.communicate(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise TransientIntegrationError(f"git {args[0]} took longer than {timeout:.0f} s") from None
    if process.returncode != 0:
        message = scrub(" ".join(stderr.split())[-500:]) or f"exit code {process.returncode}"
        error = TransientIntegrationError if _TRANSIENT_GIT.search(stderr) else IntegrationError
        raise error(f"git {args[0]} failed: {message}")
    return stdout.strip()


def fetch_git(repo_url: str, *, ref: str | None, dest: Path, limits: ReviewLimits, settings: Settings) -> Checkout:
    """Shallow-fetch one commit (or the tip of a branch, or the remote HEAD) and check it out."""
    url = _git_url(repo_url)
    env = _git_env(repo_url, settings)
    deadline = time.monotonic() + settings.review_fetch_timeout_seconds
    dest.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q", str(dest)], cwd=dest, env=env, timeout=30)
    want = ref or "HEAD"
    try:
        _git(
            ["fetch", "-q", "--depth", "1", "--no-tags", url, want],
            cwd=dest,
            env=env,
            timeout=deadline - time.monotonic(),
        )
    except IntegrationError as exc:
        if not (ref and _SHA.match(ref)) or isinstance(exc, TransientIntegrationError):
            raise
        # Some servers refuse to serve a commit by id; fetch the branches and look for it.
        _git(
            ["fetch", "-q", "--no-tags", url, "+refs/heads/*:refs/remotes/origin/*"],
            cwd=dest,
            env=env,
            timeout=deadline - time.monotonic(),
        )
    pack_bytes = sum(p.stat().st_size for p in (dest / ".git" / "objects").rglob("*") if p.is_file())
    if pack_bytes > limits.max_repo_mb * 1024 * 1024:
        raise IntegrationError(f"the repository is larger than {limits.max_repo_mb} MB")
    target = ref if ref and _SHA.match(ref) else "FETCH_HEAD"
    _git(["checkout", "-q", "--detach", target], cwd=dest, env=env, timeout=max(deadline - time.monotonic(), 30))
    commit = _git(["rev-parse", "HEAD"], cwd=dest, env=env, timeout=30)
    return Checkout(path=dest, commit=commit, method="git")


# ---------------------------------------------------------------------------- GitHub tarball


def _github_client(settings: Settings) -> httpx.Client:
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "microapp-orchestrator-review",
    }
    if settings.github_token:
        headers["Authorization"] = f"Bearer {settings.github_token.get_secret_value()}"
    # Redirects are followed (api → codeload); httpx drops Authorization when the host changes.
    return httpx.Client(
        base_url=settings.github_api_url.rstrip("/") + "/",
        headers=headers,
        timeout=httpx.Timeout(30.0, connect=10.0),
        follow_redirects=True,
    )


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    error = (
        TransientIntegrationError
        if response.status_code in (429,) or response.status_code >= 500
        else (IntegrationError)
    )
    raise error(f"GitHub answered {response.status_code} to {what}")


def resolve_commit(client: httpx.Client, owner: str, repo: str, ref: str | None) -> str:
    """The commit sha a ref (branch, tag, sha; None: the default branch) points at."""
    if ref and _SHA.match(ref):
        return ref
    path = f"repos/{quote(owner)}/{quote(repo)}/commits/{quote(ref or 'HEAD', safe='')}"
    response = client.get(path, headers={"Accept": "application/vnd.github.sha"})
    _check(response, f"the commit lookup of {owner}/{repo}@{ref or 'HEAD'}")
    sha = response.text.strip()
    if not _SHA.match(sha):
        raise IntegrationError(f"GitHub returned no commit id for {owner}/{repo}@{ref or 'HEAD'}")
    return sha


def fetch_tarball(
    owner: str, repo: str, *, ref: str | None, dest: Path, limits: ReviewLimits, settings: Settings
) -> Checkout:
    """Download the repository tarball at the resolved commit and unpack it safely into `dest`."""
    max_bytes = limits.max_repo_mb * 1024 * 1024
    limit = settings.review_fetch_timeout_seconds
    deadline = time.monotonic() + limit
    try:
        with _github_client(settings) as client:
            sha = resolve_commit(client, owner, repo, ref)
            with tempfile.NamedTemporaryFile(dir=dest.parent, prefix="tarball-", suffix=".tar.gz") as archive:
                path = f"repos/{quote(owner)}/{quote(repo)}/tarball/{sha}"
                with client.stream("GET", path, timeout=limit) as response:
                    _check(response, f"the tarball of {owner}/{repo}@{sha[:12]}")
                    size = 0
                    # Chunks as they arrive (no chunk_size: httpx would buffer a whole MB before yielding),
                    # so the total time limit holds against a server that trickles bytes under the read timeout.
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise IntegrationError(f"the repository tarball is larger than {limits.max_repo_mb} MB")
                        if time.monotonic() > deadline:
                            raise TransientIntegrationError(f"the tarball download took longer than {limit:.0f} s")
                        archive.write(chunk)
                archive.flush()
                unpacked = extract_tarball(Path(archive.name), dest, limits)
    except httpx.TransportError as exc:
        raise TransientIntegrationError(f"GitHub could not be reached: {type(exc).__name__}") from None
    return Checkout(
        path=dest, commit=sha, method="github-tarball", skipped=unpacked.skipped, truncated=unpacked.truncated
    )
