"""The maker's `microapp.yaml`: what the app is, who owns it, what it touches.

`parse_manifest` validates a parsed document and raises ValidationFailed whose detail lists each
bad field and why; `load_manifest_text` does the same for YAML or JSON text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator

from orchestrator.catalog.enums import DataClass
from orchestrator.config import Settings, get_settings
from orchestrator.documents import DocumentRefused, control_character, load_json, load_yaml
from orchestrator.errors import ValidationFailed

_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_SCOPE_RE = re.compile(r"^[A-Za-z0-9_.:*/-]{1,100}$")


def _plain(value: str) -> str:
    # A NUL or other control character breaks PostgreSQL, log lines and Slack messages further on:
    # refuse it here, where the maker can be told which field.
    if control_character(value):
        raise ValueError("must not contain control characters (NUL, escape, line breaks, ...)")
    return value


def _free_text(value: str) -> str:
    if control_character(value, free_text=True):
        raise ValueError("must not contain control characters other than tabs and line breaks")
    return value


# Every string of a manifest is one of these two.
Text = Annotated[str, AfterValidator(_plain)]
FreeText = Annotated[str, AfterValidator(_free_text)]


def repo_refusal(repo: str, settings: Settings) -> str | None:
    """Why the review worker may not fetch `repo`, or None when it may.

    The worker fetches whatever a manifest names, so a repository is the maker's choice of a URL the
    worker host opens: only https:// on REVIEW_REPO_HOSTS, or a local path (or file:// URL) under
    REVIEW_LOCAL_ROOT when that is set. Never http://, ssh, git@, or another scheme.
    """
    parsed = urlsplit(repo)
    if parsed.scheme == "https":
        host = (parsed.hostname or "").lower()
        if host and host in settings.repo_hosts and not parsed.port:
            return None
        return f"must be a repository on an allowed host ({', '.join(sorted(settings.repo_hosts)) or 'none'})"
    if parsed.scheme == "file" or (not parsed.scheme and repo.startswith("/")):
        root = settings.review_local_root
        if root is None:
            return "local repositories are not accepted here (REVIEW_LOCAL_ROOT is unset)"
        path = Path(unquote(parsed.path) if parsed.scheme else repo)
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            return "a file:// URL must name a local path"
        # Resolved, so neither `..` nor a symbolic link leads out of the root.
        if not path.is_absolute() or not path.resolve().is_relative_to(root.resolve()):
            return "a local repository must be under REVIEW_LOCAL_ROOT"
        return None
    return "must be an https:// URL (http://, ssh and git@ repositories are not accepted)"


def slugify(name: str) -> str:
    """A URL-safe id from a display name: lower case, dashes, at most 64 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:64].strip("-") or "app"


class LlmUsage(BaseModel):
    """Whether and how the app calls a large language model."""

    model_config = ConfigDict(extra="forbid")

    uses_llm: bool = False
    connector: Text | None = Field(default=None, description="approved connector the calls go through")
    provider: Text | None = Field(default=None, description="model provider, e.g. openai")
    masks_pii: bool = False


class Manifest(BaseModel):
    """A validated `microapp.yaml`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Text | None = Field(default=None, description="slug; derived from the name when absent")
    name: Text = Field(min_length=1, max_length=200)
    owner: EmailStr
    co_owners: list[EmailStr] = Field(default_factory=list)
    team: Text = Field(default="", max_length=200)
    data_class: DataClass
    description: FreeText = Field(default="", max_length=5000)
    repo: Text | None = Field(default=None, max_length=500)
    connectors: list[Text] = Field(default_factory=list)
    scopes: list[Text] = Field(default_factory=list, description="token scopes the app asks for")
    external_endpoints: list[Text] = Field(default_factory=list)
    llm: LlmUsage = Field(default_factory=LlmUsage)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG_RE.match(value):
            raise ValueError("must be lower-case letters, digits and dashes (1-64 characters)")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            if not _SCOPE_RE.match(scope):
                raise ValueError(f"{scope!r} is not a valid scope name")
        return scopes

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str | None) -> str | None:
        if value:
            refusal = repo_refusal(value, get_settings())
            if refusal:
                raise ValueError(refusal)
        return value

    @property
    def slug(self) -> str:
        """The app id: the explicit `id`, or one derived from the name."""
        return self.id or slugify(self.name)


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(top level)", "reason": err["msg"]} for err in exc.errors()
    ]


def parse_manifest(raw: Any) -> Manifest:
    """Validate a parsed manifest document; ValidationFailed lists every bad field."""
    if not isinstance(raw, dict):
        raise ValidationFailed(
            "the manifest must be a mapping", detail=[{"field": "(top level)", "reason": "must be a mapping"}]
        )
    # YAML users often write `data class: Internal`; accept the case, not the spelling.
    if isinstance(raw.get("data_class"), str):
        raw = {**raw, "data_class": raw["data_class"].strip().lower()}
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        errors = _field_errors(exc)
        summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        raise ValidationFailed(f"invalid manifest: {summary}", detail=errors) from None


def _refused(exc: DocumentRefused) -> ValidationFailed:
    return ValidationFailed(f"the manifest is refused: {exc}", detail=[{"field": "(document)", "reason": str(exc)}])


def load_manifest_text(text: str) -> Manifest:
    """Parse YAML or JSON text and validate it."""
    # JSON is not quite a subset of YAML 1.1 for PyYAML (tab indentation is refused), so a document
    # that looks like JSON is read as JSON first; a YAML flow mapping falls through to YAML.
    if text.lstrip().startswith("{"):
        try:
            return parse_manifest(load_json(text))
        except DocumentRefused as exc:
            raise ValidationFailed(
                f"the manifest is {exc}", detail=[{"field": "(document)", "reason": str(exc)}]
            ) from None
        except ValueError:  # not JSON after all (json.JSONDecodeError is a ValueError)
            pass
    try:
        raw = load_yaml(text)
    except DocumentRefused as exc:
        raise ValidationFailed(
            f"the manifest is refused: {exc}", detail=[{"field": "(document)", "reason": str(exc)}]
        ) from None
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending line, which may hold a secret: keep only what and where.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ValidationFailed(
            "the manifest is not valid YAML", detail=[{"field": "(document)", "reason": f"{problem}{where}"}]
        ) from None
    return parse_manifest(raw)
