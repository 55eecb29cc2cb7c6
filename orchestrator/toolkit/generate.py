"""`orchestrator new`: write a micro-app folder from one of the shipped templates.

A template is a folder of `.tmpl` files under `orchestrator/toolkit/templates/<name>/`, laid over the
shared `templates/common/`. Placeholders (`__APP_ID__`, `__SCOPE__`, `__MANIFEST__`, ...) are replaced
by plain text substitution, so the GitHub Actions `${{ }}` and Python f-strings of the templates need
no escaping. A path component starting with `dot-` becomes a dot file (`dot-github` → `.github`): the
templates then ship as package data and are not linted or type-checked as part of the orchestrator.

The answers are checked against the real manifest parser and the policy before anything is written:
a template that needs a scope (or LLM use) the data class does not allow is refused with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from orchestrator.catalog.enums import DataClass
from orchestrator.catalog.manifest import parse_manifest, slugify
from orchestrator.catalog.policy import Policy
from orchestrator.errors import ValidationFailed

_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_ORCHESTRATOR_CONNECTOR = "orchestrator-llm"


@dataclass(frozen=True)
class TemplateSpec:
    """What a template is for and what it needs from the policy."""

    name: str
    summary: str
    scopes: tuple[str, ...]
    uses_llm: bool = False


TEMPLATES: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in (
        TemplateSpec("bff", "backend-for-frontend calling an internal API (retries, pagination)", ("files:read",)),
        TemplateSpec("processor", "webhook receiver (idempotent, retries, dead-letter log)", ("files:read",)),
        TemplateSpec("llm-connector", "summariser calling an LLM through the orchestrator", ("llm:invoke",), True),
    )
}


@dataclass(frozen=True)
class Answers:
    """Everything the generator asks: the app's slug, template, data class and owner."""

    name: str
    template: str
    data_class: str
    owner: str
    team: str = ""
    description: str = ""


def _refuse(message: str, field: str) -> ValidationFailed:
    return ValidationFailed(message, detail=[{"field": field, "reason": message}])


def check_name(name: str) -> str:
    """The name as a slug, or ValidationFailed saying what a valid one looks like."""
    if not _SLUG_RE.match(name):
        suggestion = slugify(name)
        raise _refuse(
            f"{name!r} is not a valid app name: use lower-case letters, digits and dashes, 1-64 characters "
            f"(for example {suggestion!r})",
            "name",
        )
    return name


def manifest_for(answers: Answers, policy: Policy) -> dict[str, Any]:
    """The `microapp.yaml` document for these answers, validated by the manifest parser and the policy.

    Raises ValidationFailed naming the bad answer: an unknown template or data class, a bad name or
    owner, or a template the data class's policy does not allow (a scope outside `allowed_scopes`,
    LLM use where `llm.enabled` is false).
    """
    check_name(answers.name)
    spec = TEMPLATES.get(answers.template)
    if spec is None:
        raise _refuse(f"unknown template {answers.template!r} (choose one of {', '.join(TEMPLATES)})", "template")
    try:
        data_class = DataClass(answers.data_class.strip().lower())
    except ValueError:
        choices = ", ".join(d.value for d in DataClass)
        raise _refuse(f"unknown data class {answers.data_class!r} (choose one of {choices})", "data_class") from None
    rules = policy.for_class(data_class.value)
    if spec.uses_llm and not rules.llm.enabled:
        raise _refuse(
            f"the {spec.name} template calls an LLM, and the policy does not allow LLM use for {data_class.value} "
            "data; pick another template, or ask IT whether the data class is right",
            "template",
        )
    if spec.uses_llm and _ORCHESTRATOR_CONNECTOR not in policy.approved_llm_connectors:
        raise _refuse(
            f"the policy does not approve the {_ORCHESTRATOR_CONNECTOR} connector this template uses", "template"
        )
    missing = [s for s in spec.scopes if s not in rules.allowed_scopes]
    if missing:
        raise _refuse(
            f"the {spec.name} template needs the scope(s) {', '.join(missing)}, which {data_class.value} apps may "
            f"not have (allowed: {', '.join(rules.allowed_scopes) or 'none'})",
            "template",
        )
    document: dict[str, Any] = {
        "id": answers.name,
        "name": answers.name,
        "owner": answers.owner.strip(),
        "team": answers.team,
        "data_class": data_class.value,
        "description": answers.description or spec.summary,
        "scopes": list(spec.scopes),
        "connectors": [],
        "external_endpoints": [],
        "llm": {"uses_llm": True, "connector": _ORCHESTRATOR_CONNECTOR, "provider": "openai"}
        if spec.uses_llm
        else {"uses_llm": False},
    }
    parse_manifest(document)  # raises ValidationFailed naming the field (the owner's email, mostly)
    return document


def _template_files(template: str) -> dict[str, Traversable]:
    """Output path → template file, the template's own files over the common ones."""
    root = resources.files("orchestrator.toolkit") / "templates"
    files: dict[str, Traversable] = {}
    for layer in ("common", template):
        stack: list[tuple[str, Traversable]] = [("", root / layer)]
        while stack:
            prefix, folder = stack.pop()
            for entry in folder.iterdir():
                name = "." + entry.name[4:] if entry.name.startswith("dot-") else entry.name
                if entry.is_dir():
                    if name != "__pycache__":
                        stack.append((f"{prefix}{name}/", entry))
                elif entry.name.endswith(".tmpl"):
                    files[prefix + name.removesuffix(".tmpl")] = entry
    return files


def _about(template: str) -> dict[str, str]:
    text = (resources.files("orchestrator.toolkit") / "templates" / template / "about.txt").read_text("utf-8")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def render(answers: Answers, policy: Policy) -> dict[str, str]:
    """Every file of the new app: relative path → text (nothing written yet)."""
    manifest = manifest_for(answers, policy)
    about = _about(answers.template)
    values = {
        "__APP_ID__": answers.name,
        "__APP_NAME__": answers.name,
        "__TEMPLATE__": answers.template,
        "__DATA_CLASS__": manifest["data_class"],
        "__SCOPES__": ", ".join(manifest["scopes"]),
        "__SCOPE__": " ".join(manifest["scopes"]),
        "__MANIFEST__": yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True).rstrip(),
        "__WHAT__": about.get("WHAT", ""),
        "__RUN_ENV__": about.get("RUN_ENV", ""),
        "__ENDPOINTS__": about.get("ENDPOINTS", ""),
    }
    pattern = re.compile("|".join(re.escape(k) for k in values))
    return {
        path: pattern.sub(lambda m: values[m.group(0)], source.read_text("utf-8"))
        for path, source in sorted(_template_files(answers.template).items())
    }


def generate(answers: Answers, destination: Path, policy: Policy) -> list[Path]:
    """Write the app into `destination` (which must not exist, or be empty) and return the files written."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise _refuse(
            f"{destination} already exists and is not empty; choose another name or --dir, or remove it first",
            "dir",
        )
    files = render(answers, policy)
    written = []
    for rel, text in files.items():
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
