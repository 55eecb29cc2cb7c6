"""The secret scanner: format rules plus generic credential assignments, fast enough for whole repos.

Speed comes from one pass of a trie-shaped regular expression over the lower-cased text that finds the
anchor literals of every rule; only the lines holding an anchor are examined by the rules that own it.
A finding keeps the rule, the place, a salted fingerprint and a redacted preview, never the value.

Allow-listing: `orchestrator: allow-secret <reason>` in a comment on the line, or the finding's
fingerprint in the policy's `allowed_secret_fingerprints`. Allowed findings are kept, marked, audited.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TypeAlias

from orchestrator.reviews.checks import secret_assign
from orchestrator.reviews.checks.findings import Finding, Severity, fingerprint, redact
from orchestrator.reviews.checks.secret_rules import RULES, Rule, value_ok
from orchestrator.reviews.checks.secret_values import is_placeholder, is_template

CHECK = "secrets"
_ALLOW_RE = re.compile(r"orchestrator:\s*allow-secret\b[ \t]*(?P<reason>[^\n]*)")
_ASSIGN = "assign"  # pseudo rule id for the keyword-assignment detector


@dataclass(frozen=True)
class SecretHit:
    """A secret found in text. Lives in memory only: never printed, logged or stored."""

    rule: str
    family: str
    line: int
    value: str = field(repr=False)  # a failing test or a log line must not print it
    severity: Severity = Severity.high
    source: str = "orchestrator"


# A character trie: each key is one character ("" marks the end of a word) leading to the next level.
_Trie: TypeAlias = dict[str, "_Trie"]


def _trie_pattern(words: Iterable[str]) -> str:
    trie: _Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: _Trie) -> str:
        alternatives = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


# Anchors too common to prefilter on (`key` is on every other line of code): rules that own only
# such anchors are assignment-shaped and run on the lines the assignment-shape pattern finds.
_COMMON_WORDS = frozenset({"key", "pwd", "pass", "token", "secret", "password", "cred", "auth"})


def _build_index() -> tuple[re.Pattern[str], dict[str, tuple[str, ...]], tuple[str, ...], tuple[Rule, ...]]:
    owners: dict[str, set[str]] = defaultdict(set)
    shape_rules = {_ASSIGN}
    for rule in RULES:
        for anchor in rule.anchors:
            if anchor in _COMMON_WORDS:
                shape_rules.add(rule.id)
            else:
                owners[anchor].add(rule.id)
    # The regex consumes the longest anchor at a position, so anchors inside it (`key` in
    # `accountkey`) are never reported on their own: the longer anchor triggers their rules too.
    by_anchor = {anchor: tuple(sorted(set().union(*(owners[b] for b in owners if b in anchor)))) for anchor in owners}
    pattern = re.compile(_trie_pattern(owners))
    return pattern, by_anchor, tuple(sorted(shape_rules)), tuple(r for r in RULES if not r.anchors)


_ANCHOR_RE, _RULES_BY_ANCHOR, _SHAPE_RULES, _FULLTEXT_RULES = _build_index()
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_RULES_BY_ID = {r.id: r for r in RULES}
_RULE_ORDER = {r.id: i for i, r in enumerate(RULES)}


def _credential_ok(rule: Rule, match: re.Match[str], value: str) -> bool:
    value = value.strip()
    if len(value) < 3 or is_template(value) or value[0] in "$<[{%" or is_placeholder(value, words=rule.words):
        return False
    user = match.groupdict().get("u")
    return not (user is not None and (user == value or is_template(user) or user.startswith(("$", "<", "["))))


def _rule_hits(rule: Rule, segment: str, first_line: int) -> Iterable[SecretHit]:
    for match in rule.pattern.finditer(segment):
        value = rule.secret_of(match)
        if not value:
            continue
        if rule.placeholder and is_placeholder(value, sequences=rule.sequences, words=False):
            continue
        if rule.kind == "credential" and not _credential_ok(rule, match, value):
            continue
        if not value_ok(rule, value):
            continue
        line = first_line + segment.count("\n", 0, match.start())
        yield SecretHit(rule.id, rule.family, line, value, rule.severity, rule.source)


def _segment_end(text: str, start: int, extra_lines: int) -> int:
    end = text.find("\n", start)
    for _ in range(extra_lines):
        if end == -1:
            break
        end = text.find("\n", end + 1)
    return len(text) if end == -1 else end


def _dedupe(hits: list[SecretHit]) -> list[SecretHit]:
    # Several rules often see one secret (`token = "ghp_..."` is both a GitHub token and an
    # assignment); keep the most specific report of each value on a line.
    def priority(hit: SecretHit) -> tuple[bool, int, int]:
        generic = hit.family == "generic" or hit.rule.startswith("generic-")
        return (generic, -len(hit.value), _RULE_ORDER.get(hit.rule, len(_RULE_ORDER)))

    kept: list[SecretHit] = []
    for hit in sorted(hits, key=priority):
        if any(k.line == hit.line and (hit.value in k.value or k.value in hit.value) for k in kept):
            continue
        kept.append(hit)
    return sorted(kept, key=lambda h: (h.line, h.rule))


def scan_text(text: str, path: str = "") -> list[SecretHit]:
    """Every secret in `text`; `path` only decides whether the file is program code."""
    code_file = PurePosixPath(path).suffix.lower() in secret_assign.CODE_EXTENSIONS
    lower = text.lower()
    if len(lower) != len(text):
        lower = text.translate(_ASCII_LOWER)  # some characters lower-case to two; keep offsets aligned
    triggers = [(m.start(), _RULES_BY_ANCHOR[m.group()]) for m in _ANCHOR_RE.finditer(lower)]
    if any(word in lower for word in secret_assign.SHAPE_WORDS):
        shape = secret_assign.SHAPE_CODE_RE if code_file else secret_assign.SHAPE_RE
        triggers += [(m.start(), _SHAPE_RULES) for m in shape.finditer(lower)]
    triggers.sort(key=lambda t: t[0])
    lines: dict[int, tuple[int, set[str]]] = {}
    base_pos, base_no, line_end = 0, 1, 0
    rule_ids: set[str] = set()
    for pos, ids in triggers:
        if pos >= line_end:
            # Triggers come in text order, so line numbers come from counting newlines once, incrementally.
            start = text.rfind("\n", 0, pos) + 1
            base_no += text.count("\n", base_pos, start)
            base_pos = start
            newline = text.find("\n", pos)
            line_end = len(text) if newline == -1 else newline + 1
            rule_ids = lines.setdefault(start, (base_no, set()))[1]
        rule_ids.update(ids)
    hits: list[SecretHit] = []
    for start, (first_line, rule_ids) in lines.items():
        for rule_id in rule_ids:
            if rule_id == _ASSIGN:
                line_text = text[start : _segment_end(text, start, 0)]
                for a in secret_assign.find_assignments(line_text, code_file=code_file):
                    hits.append(SecretHit(a.rule, "generic", first_line, a.value, a.severity, "orchestrator"))
                continue
            rule = _RULES_BY_ID[rule_id]
            segment = text[start : _segment_end(text, start, rule.window)]
            hits.extend(_rule_hits(rule, segment, first_line))
    for rule in _FULLTEXT_RULES:
        hits.extend(_rule_hits(rule, text, 1))
    return _dedupe(hits)


def _allow_reason(line_text: str) -> str | None:
    m = _ALLOW_RE.search(line_text)
    if m is None:
        return None
    reason = re.sub(r"\s*(\*/|-->|#}|%>)\s*$", "", m.group("reason")).strip()
    return reason or "allowed inline (no reason given)"


def secret_findings(text: str, path: str, *, allowed_fingerprints: Iterable[str] = ()) -> list[Finding]:
    """Findings for every secret in one file, allow-listing applied."""
    hits = scan_text(text, path)
    if not hits:
        return []
    allowed = set(allowed_fingerprints)
    lines = text.split("\n")
    findings = []
    for hit in hits:
        fp = fingerprint(hit.value)
        reason = _allow_reason(lines[hit.line - 1]) if hit.line - 1 < len(lines) else None
        if reason is None and fp in allowed:
            reason = "fingerprint allow-listed in policy"
        findings.append(
            Finding(
                check=CHECK,
                rule=hit.rule,
                file=path,
                line=hit.line,
                severity=hit.severity,
                fingerprint=fp,
                preview=redact(hit.value),
                message=f"possible {hit.family} secret ({hit.rule})",
                allowed=reason is not None,
                allow_reason=reason,
                extra={"family": hit.family, "detector": hit.source},
            )
        )
    return findings
