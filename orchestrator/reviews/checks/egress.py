"""LLM data egress: direct calls to model providers, and endpoints the manifest does not declare.

An app may use an LLM only through one of the policy's approved connectors (a proxy that masks and logs),
such as the orchestrator's own (`orchestrator-llm`, which masks by policy).
Importing a provider's SDK without declaring such a connector, or naming a provider's API host in code
or config, bypasses it. For restricted and regulated apps that fails the review. Any other external host
the code talks to must be listed in the manifest's `external_endpoints`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from orchestrator.reviews.checks.findings import Finding, Severity, fingerprint

CHECK = "egress"
STRICT_CLASSES = ("restricted", "regulated")
# The orchestrator's own LLM connector (orchestrator/http/llm.py): it masks personal data by policy, so an
# app declaring it needs no `masks_pii` of its own. Approved when listed in `approved_llm_connectors`.
ORCHESTRATOR_CONNECTOR = "orchestrator-llm"

LLM_HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
    "aiplatform.googleapis.com": "google",
    "api.cohere.ai": "cohere",
    "api.cohere.com": "cohere",
    "api.mistral.ai": "mistral",
    "api.groq.com": "groq",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.perplexity.ai": "perplexity",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "xai",
    "api-inference.huggingface.co": "huggingface",
    "router.huggingface.co": "huggingface",
    "api.replicate.com": "replicate",
    "api.fireworks.ai": "fireworks",
    "openrouter.ai": "openrouter",
}
_LLM_HOST_SUFFIXES = {".openai.azure.com": "azure-openai", ".cognitiveservices.azure.com": "azure-openai"}
_BEDROCK_RE = re.compile(r"^bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com$")

# Python imports: provider SDKs, LangChain (legacy `langchain.llms`/`chat_models`, community and partner
# packages), LlamaIndex's LLM and embedding integrations, LiteLLM.
_PY_IMPORT = r"^[ \t]*(?:from|import)[ \t]+"
_SDK_RES = [
    (re.compile(_PY_IMPORT + r"(openai|anthropic|cohere|mistralai|groq|together|replicate|litellm)\b", re.M), None),
    (re.compile(_PY_IMPORT + r"(google\.generativeai|google\.genai|vertexai)\b", re.M), "google"),
    (
        re.compile(
            _PY_IMPORT + r"(langchain_(?:openai|anthropic|google_genai|google_vertexai|mistralai|cohere|aws|groq|"
            r"together|fireworks|huggingface|ollama|deepseek|xai)"
            r"|langchain(?:_community)?\.(?:llms|chat_models|embeddings)(?:\.\w+)?"
            r"|llama_index\.(?:llms|embeddings|multi_modal_llms)\.\w+)\b",
            re.M,
        ),
        None,
    ),
    # boto3 clients of Bedrock's model APIs.
    (re.compile(r"""\.client\(\s*(?:service_name\s*=\s*)?['"](bedrock-(?:agent-)?runtime)['"]"""), "aws-bedrock"),
    # JS/TS: static imports, require() and dynamic import() of the SDKs, LangChain JS, LlamaIndex.TS,
    # the Vercel AI SDK's providers, Azure OpenAI and Bedrock Runtime. Not on commented-out lines.
    (
        re.compile(
            r"""^(?![ \t]*(?://|/?\*))[^\n]*?(?:require\(\s*|import\(\s*|from\s+|import\s+)"""
            r"""['"](openai|@anthropic-ai/sdk|@google/generative-ai|@google/genai|@google-cloud/vertexai|"""
            r"""cohere-ai|@mistralai/mistralai|groq-sdk|replicate|@azure/openai|@aws-sdk/client-bedrock(?:-agent)?-runtime|"""
            r"""@langchain/(?:openai|anthropic|google-genai|google-vertexai|mistralai|cohere|aws|groq|ollama|"""
            r"""community/(?:llms|chat_models|embeddings)/[\w-]+)|langchain/(?:llms|chat_models|embeddings)/[\w-]+|"""
            r"""llamaindex|@llamaindex/(?:openai|anthropic|mistral|groq|gemini|bedrock)|"""
            r"""@ai-sdk/(?:openai|anthropic|google|mistral|cohere|amazon-bedrock|azure|groq))['"]""",
            re.M,
        ),
        None,
    ),
]
# Every SDK pattern names one of these (lower case); a file with none of them is not searched.
_SDK_HINTS = (
    "openai",
    "anthropic",
    "cohere",
    "mistral",
    "groq",
    "together",
    "replicate",
    "litellm",
    "google",
    "vertexai",
    "langchain",
    "llama",
    "bedrock",
    "ai-sdk",
)
_SDK_PROVIDER = {
    "@anthropic-ai/sdk": "anthropic",
    "@google/generative-ai": "google",
    "@google/genai": "google",
    "@google-cloud/vertexai": "google",
    "cohere-ai": "cohere",
    "@mistralai/mistralai": "mistral",
    "groq-sdk": "groq",
    "mistralai": "mistral",
    "@azure/openai": "azure-openai",
    "@aws-sdk/client-bedrock-runtime": "aws-bedrock",
    "@aws-sdk/client-bedrock-agent-runtime": "aws-bedrock",
    "llamaindex": "llamaindex",
}
_PROVIDER_WORDS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "vertexai": "google",
    "mistral": "mistral",
    "mistralai": "mistral",
    "cohere": "cohere",
    "aws": "aws-bedrock",
    "bedrock": "aws-bedrock",
    "amazon": "aws-bedrock",
    "groq": "groq",
    "azure": "azure-openai",
}


def sdk_provider(module: str) -> str:
    """The provider behind an imported module: `langchain_openai` → openai, `@langchain/aws` → aws-bedrock."""
    if module in _SDK_PROVIDER:
        return _SDK_PROVIDER[module]
    words = re.split(r"[^a-z0-9]+", module.lower())
    for word in reversed(words):
        for key, provider in _PROVIDER_WORDS.items():
            if word.startswith(key):
                return provider
    if "langchain" in words or "langchain" in module:
        return "langchain"
    if "llama" in module:
        return "llamaindex"
    return words[0] if words and words[0] else module


_URL_RE = re.compile(
    r"\b(?:https?|wss?)://(?P<host>[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\[[0-9a-fA-F:]+\]|\d{1,3}(?:\.\d{1,3}){3})"
)
_BARE_LLM_HOST_RE = re.compile(
    r"(?<![a-z0-9.-])(?:"
    + "|".join(re.escape(h) for h in LLM_HOSTS)
    + r"|[a-z0-9-]+\.openai\.azure\.com|bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com)(?![a-z0-9-])"
)
_LLM_HINTS = (
    "openai",
    "anthropic",
    "googleapis",
    "cohere",
    "mistral",
    "groq",
    "together",
    "perplexity",
    "deepseek",
    "api.x.ai",
    "huggingface",
    "replicate",
    "fireworks",
    "openrouter",
    "bedrock",
)
_COMMENT_RE = re.compile(r"[ \t]*(?:#|//|\*|/\*|<!--|--|;)")
# Hosts that appear in code without data going there: documentation, schemas, package registries.
_IGNORED_HOSTS = (
    "example.com",
    "example.org",
    "example.net",
    "localhost",
    "www.w3.org",
    "w3.org",
    "json-schema.org",
    "schemas.xmlsoap.org",
    "schemas.microsoft.com",
    "xmlns.com",
    "purl.org",
    "opensource.org",
    "apache.org",
    "registry.npmjs.org",
    "pypi.org",
    "files.pythonhosted.org",
    "github.com",
    "docs.python.org",
    "developer.mozilla.org",
    "stackoverflow.com",
    "readthedocs.io",
    "semver.org",
    "spdx.org",
    "creativecommons.org",
    "gnu.org",
    "yaml.org",
    "ietf.org",
    "npmjs.com",
)
_DOC_EXTENSIONS = (".md", ".rst", ".txt", ".adoc", ".html", ".htm", ".lock", ".sum", ".svg", ".map", ".css")
_MANIFEST_NAMES = (
    "microapp.yaml",
    "microapp.yml",
    "package.json",
    "package-lock.json",
    "pyproject.toml",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Pipfile.lock",
    "LICENSE",
    "NOTICE",
)


def llm_provider_of_host(host: str) -> str | None:
    """The LLM provider a host belongs to, if it is a model API."""
    host = host.lower().rstrip(".")
    if host in LLM_HOSTS:
        return LLM_HOSTS[host]
    for suffix, provider in _LLM_HOST_SUFFIXES.items():
        if host.endswith(suffix):
            return provider
    return "aws-bedrock" if _BEDROCK_RE.match(host) else None


@dataclass
class EgressScan:
    """What the code of a repository reaches out to."""

    hosts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # host → [(file, line)]
    llm_hosts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    sdks: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # provider → [(file, line)]

    def add_file(self, rel: str, text: str) -> None:
        """Record the hosts and SDK imports of one file."""
        name = PurePosixPath(rel).name
        if name in _MANIFEST_NAMES:
            return
        lower = text.lower()
        for pattern, provider in _SDK_RES if any(h in lower for h in _SDK_HINTS) else ():
            for m in pattern.finditer(text):
                module = m.group(1)
                prov = provider or sdk_provider(module)
                self.sdks.setdefault(prov, []).append((rel, text.count("\n", 0, m.start()) + 1))
        if name.lower().endswith(_DOC_EXTENSIONS):
            return
        if any(k in lower for k in _LLM_HINTS):
            for m in _BARE_LLM_HOST_RE.finditer(lower):
                where = _code_position(text, m.start())
                if where is not None:
                    self.llm_hosts.setdefault(m.group(0), []).append((rel, where))
        if "://" in text:
            for m in _URL_RE.finditer(text):
                host = m.group("host").lower().strip("[]")
                if _ignored(host) or llm_provider_of_host(host):
                    continue
                where = _code_position(text, m.start())
                if where is not None:
                    self.hosts.setdefault(host, []).append((rel, where))


def _code_position(text: str, pos: int) -> int | None:
    """The line number of `pos`, or None when that line is a comment (a link in a comment sends nothing)."""
    start = text.rfind("\n", 0, pos) + 1
    if _COMMENT_RE.match(text, start):
        return None
    return text.count("\n", 0, start) + 1


def _ignored(host: str) -> bool:
    if host.startswith(("127.", "10.", "192.168.", "0.0.0.0")) or host in ("::1",):
        return True
    return any(host == h or host.endswith("." + h) for h in _IGNORED_HOSTS)


def host_of(endpoint: str) -> str:
    """The host of a manifest endpoint entry (a URL, `host:port` or a bare host, maybe `*.domain`)."""
    endpoint = endpoint.strip().lower()
    endpoint = re.sub(r"^[a-z][a-z0-9+.-]*://", "", endpoint)
    return endpoint.split("/", 1)[0].split("@")[-1].rsplit(":", 1)[0] if endpoint else ""


def declared(host: str, endpoints: Iterable[str]) -> bool:
    """Whether `host` is covered by a declared endpoint (exact, or a `*.domain` wildcard)."""
    for entry in endpoints:
        h = host_of(entry)
        if h == host or (h.startswith("*.") and (host.endswith(h[1:]) or host == h[2:])):
            return True
    return False


def _finding(
    rule: str, severity: Severity, message: str, where: list[tuple[str, int]], key: str, **extra: Any
) -> Finding:
    file, line = where[0] if where else (None, None)
    return Finding(
        check=CHECK,
        rule=rule,
        file=file,
        line=line,
        severity=severity,
        fingerprint=fingerprint(f"{rule}:{key}"),
        preview=key,
        message=message,
        extra={"locations": [f"{f}:{n}" for f, n in where[:20]], **extra},
    )


def egress_findings(
    scan: EgressScan,
    *,
    manifest: dict[str, Any] | None,
    data_class: str,
    approved_connectors: Iterable[str],
    dependency_names: Iterable[str] = (),
) -> list[Finding]:
    """Findings about LLM use and undeclared endpoints, given what the code does and what the manifest says."""
    approved = set(approved_connectors)
    manifest = manifest or {}
    llm = manifest.get("llm") or {}
    uses_llm = bool(llm.get("uses_llm"))
    connector = llm.get("connector")
    strict = data_class in STRICT_CLASSES
    # In restricted/regulated apps unapproved egress fails the review; elsewhere it needs a human.
    egress_extra = {"llm_egress": True, "fails_for_class": strict}
    findings: list[Finding] = []
    for host, where in sorted(scan.llm_hosts.items()):
        provider = llm_provider_of_host(host) or host
        findings.append(
            _finding(
                "llm-direct-endpoint",
                Severity.high,
                f"code calls the {provider} API at {host} directly instead of an approved connector "
                f"({', '.join(sorted(approved)) or 'none approved'})",
                where,
                host,
                provider=provider,
                **egress_extra,
            )
        )
    sdk_uses = dict(scan.sdks)
    llm_deps = {
        "openai",
        "anthropic",
        "cohere",
        "mistralai",
        "groq",
        "google-generativeai",
        "google-genai",
        "@anthropic-ai/sdk",
        "@google/generative-ai",
        "groq-sdk",
        "cohere-ai",
        "@mistralai/mistralai",
        "litellm",
        "@azure/openai",
        "@aws-sdk/client-bedrock-runtime",
        "langchain-openai",
        "langchain-anthropic",
        "@langchain/openai",
        "@langchain/anthropic",
        "llama-index-llms-openai",
    }
    for dep in set(dependency_names) & llm_deps:
        sdk_uses.setdefault(sdk_provider(dep), [])
    through_connector = uses_llm and connector in approved
    if sdk_uses and not through_connector:
        for provider, where in sorted(sdk_uses.items()):
            findings.append(
                _finding(
                    "llm-sdk-without-approved-connector",
                    Severity.high,
                    f"the {provider} SDK is used but the manifest declares no approved LLM connector",
                    where,
                    f"sdk:{provider}",
                    provider=provider,
                    **egress_extra,
                )
            )
    if uses_llm and connector not in approved:
        findings.append(
            _finding(
                "llm-connector-not-approved",
                Severity.high,
                f"manifest LLM connector {connector!r} is not one of the approved connectors",
                [("microapp.yaml", 0)],
                f"connector:{connector}",
                connector=connector,
                **egress_extra,
            )
        )
    if (sdk_uses or scan.llm_hosts) and not uses_llm:
        findings.append(
            _finding(
                "llm-undeclared",
                Severity.medium,
                "the code uses an LLM but the manifest says it does not",
                [("microapp.yaml", 0)],
                "undeclared-llm",
            )
        )
    masks = bool(llm.get("masks_pii")) or (connector == ORCHESTRATOR_CONNECTOR and connector in approved)
    if uses_llm and strict and not masks:
        findings.append(
            _finding(
                "llm-unmasked-pii",
                Severity.medium,
                f"{data_class} app sends data to an LLM without declaring PII masking",
                [("microapp.yaml", 0)],
                "masks_pii",
            )
        )
    endpoints = [str(e) for e in manifest.get("external_endpoints") or []]
    for host, where in sorted(scan.hosts.items()):
        if llm_provider_of_host(host) or declared(host, endpoints):
            continue
        findings.append(
            _finding(
                "undeclared-endpoint",
                Severity.medium,
                f"code reaches {host}, which is not in the manifest's external_endpoints",
                where,
                host,
                host=host,
            )
        )
    return findings


def endpoint_hosts(scan: EgressScan, manifest: dict[str, Any] | None) -> set[str]:
    """The app's external endpoints: each declared entry once (a wildcard counts as one), plus undeclared hosts."""
    entries = [str(e) for e in (manifest or {}).get("external_endpoints") or []]
    declared_hosts = {host_of(e) for e in entries}
    found = {h for h in set(scan.hosts) | set(scan.llm_hosts) if not declared(h, entries)}
    return {h for h in declared_hosts if h} | found
