"""OSV's per-ecosystem exports: download one `all.zip` to a local file, whole or not at all.

OSV publishes every advisory of an ecosystem as a zip of JSON files
(`https://osv-vulnerabilities.storage.googleapis.com/{ecosystem}/all.zip`). This module only moves
bytes: it streams the response to a temporary file under a size cap and a time limit, checks that the
body is as long as the server said, and hands back the path. Reading the zip is the caller's business.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_URL_TEMPLATE = "https://osv-vulnerabilities.storage.googleapis.com/{ecosystem}/all.zip"


class DownloadFailed(Exception):
    """The export could not be fetched whole (HTTP error, timeout, short body, too large)."""


@dataclass(frozen=True)
class Download:
    """A fetched export on disk (the caller deletes it)."""

    path: Path
    url: str
    size: int
    last_modified: str | None


def download_export(
    url_template: str,
    ecosystem: str,
    directory: Path,
    *,
    timeout_seconds: float,
    max_bytes: int = 2_000_000_000,
    client: httpx.Client | None = None,
) -> Download:
    """Stream `url_template.format(ecosystem=...)` into a temporary file in `directory`.

    Raises DownloadFailed on a non-200 answer, a connection error, a body shorter than its
    Content-Length, more than `max_bytes`, or when the whole transfer takes longer than `timeout_seconds`.
    """
    url = url_template.format(ecosystem=ecosystem)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".osv-{ecosystem}-", suffix=".zip", dir=directory)
    path = Path(name)
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(timeout_seconds), follow_redirects=True)
    deadline = time.monotonic() + timeout_seconds
    try:
        with os.fdopen(fd, "wb") as out, http.stream("GET", url) as response:
            if response.status_code != 200:
                raise DownloadFailed(f"{url}: HTTP {response.status_code}")
            expected = response.headers.get("content-length")
            size = 0
            for chunk in response.iter_bytes(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadFailed(f"{url}: larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise DownloadFailed(f"{url}: took longer than {timeout_seconds:g} s")
                out.write(chunk)
            if expected is not None and expected.isdigit() and int(expected) != size:
                raise DownloadFailed(f"{url}: got {size} of {expected} bytes")
        return Download(path, url, size, response.headers.get("last-modified"))
    except httpx.TimeoutException:
        path.unlink(missing_ok=True)
        raise DownloadFailed(f"{url}: timed out after {timeout_seconds:g} s") from None
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise DownloadFailed(f"{url}: {type(exc).__name__}: {exc}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        if own:
            http.close()
