"""Where archives are kept: a directory (the default) or an S3-compatible bucket through boto3.

`ARCHIVE_URL` picks the backend: a path or `file://` URL is a directory, `s3://bucket/prefix` a
bucket (`ARCHIVE_S3_ENDPOINT_URL` for MinIO/moto; credentials from boto3's usual chain). Both
backends store under keys like `<app>/<file>` and return the object's full URI. botocore errors are
translated into our own (`TransientIntegrationError` for what a retry may fix).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from orchestrator.errors import ConfigError, IntegrationError, NotFound, TransientIntegrationError


class ArchiveStore(Protocol):
    """**Protocol:** put, fetch and delete archive files by key; `put` overwrites atomically."""

    def put(self, key: str, source: Path) -> str:
        """Store the file at `source` under `key`; returns the object's URI."""
        ...

    def fetch(self, key: str, dest: Path) -> None:
        """Copy the object under `key` to `dest`; NotFound when it is missing."""
        ...

    def delete(self, key: str) -> bool:
        """Delete the object; False when it was already gone."""
        ...

    def uri(self, key: str) -> str:
        """The URI an object under `key` has."""
        ...


class DirectoryStore:
    """Archives as files under a local (or mounted) directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise IntegrationError(f"archive key escapes the archive directory: {key!r}")
        return path

    def uri(self, key: str) -> str:
        """A file:// URI."""
        return self._path(key).as_uri()

    def put(self, key: str, source: Path) -> str:
        """Copy into place through a temporary file and a rename, so readers never see half a file."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path.as_uri()

    def fetch(self, key: str, dest: Path) -> None:
        """Copy the archive file out."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"archive object missing: {path}")
        shutil.copyfile(path, dest)

    def delete(self, key: str) -> bool:
        """Remove the file."""
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True


class S3Store:
    """Archives as objects in an S3-compatible bucket under a prefix."""

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None, region: str) -> None:
        # boto3 is an optional extra: only deployments that archive to S3 install it.
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError(
                f"ARCHIVE_URL s3://{bucket}: the S3 archive store needs boto3; "
                "install the s3 extra: pip install 'microapp-orchestrator[s3]'"
            ) from None

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        """An s3:// URI."""
        return f"s3://{self.bucket}/{self._key(key)}"

    def put(self, key: str, source: Path) -> str:
        """Upload the file (a single PUT is atomic in S3)."""
        self._call(lambda: self._client.upload_file(str(source), self.bucket, self._key(key)), key)
        return self.uri(key)

    def fetch(self, key: str, dest: Path) -> None:
        """Download the object."""
        self._call(lambda: self._client.download_file(self.bucket, self._key(key), str(dest)), key)

    def delete(self, key: str) -> bool:
        """Delete the object (S3 answers success for a missing key too)."""
        exists = True
        try:
            self._call(lambda: self._client.head_object(Bucket=self.bucket, Key=self._key(key)), key)
        except NotFound:
            exists = False
        self._call(lambda: self._client.delete_object(Bucket=self.bucket, Key=self._key(key)), key)
        return exists

    def _call(self, fn: Any, key: str) -> Any:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"archive object missing: {self.uri(key)}") from None
            if status >= 500 or status == 429 or code in ("SlowDown", "RequestTimeout"):
                raise TransientIntegrationError(f"S3 {code or status} for {self.uri(key)}") from None
            raise IntegrationError(f"S3 {code or status} for {self.uri(key)}") from None
        except (BotoCoreError, S3UploadFailedError, OSError) as exc:
            raise TransientIntegrationError(f"S3 unavailable for {self.uri(key)}: {exc}") from None


def store_from_url(url: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> ArchiveStore:
    """The backend an ARCHIVE_URL names."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"ARCHIVE_URL {url!r}: s3:// needs a bucket name")
        return S3Store(parsed.netloc, parsed.path, endpoint_url=endpoint_url, region=region)
    if parsed.scheme == "file":
        return DirectoryStore(Path(parsed.path))
    if parsed.scheme in ("", None) or len(parsed.scheme) == 1:  # a bare path (or a Windows drive)
        return DirectoryStore(Path(url))
    raise ConfigError(f"ARCHIVE_URL {url!r}: use a directory path, file://, or s3://bucket/prefix")


def store_from_settings() -> ArchiveStore:
    """The backend of the configured ARCHIVE_URL."""
    from orchestrator.config import get_settings

    settings = get_settings()
    return store_from_url(
        settings.archive_url, endpoint_url=settings.archive_s3_endpoint_url, region=settings.archive_s3_region
    )
