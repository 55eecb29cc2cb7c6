"""A review result for a person: the verdict, what it means, and per finding where, what, how to fix it.

Shared by `orchestrator review` (orchestrator/cli/review.py) and the light `microapp-review` (maker.py), so
the two print the same thing. Pure text: no terminal library.
"""

from __future__ import annotations

from orchestrator.reviews.checks.findings import ReviewResult

MEANING = {
    "pass": "clean: the app can be approved automatically",
    "needs_approval": "nothing blocks it; a person approves it (its data class, or the findings below)",
    "escalate": "nothing blocks it; engineering reviews it (it reaches further than its data class allows)",
    "fail": "blocked: fix the findings marked BLOCKS before you push",
}


def header_lines(result: ReviewResult) -> list[str]:
    """The verdict, the data class and counts, and the advisory sets the dependency check used."""
    lines = [f"verdict: {result.verdict} ({MEANING.get(result.verdict, result.verdict)})"]
    stats = result.stats
    lines.append(
        f"data class: {stats.get('data_class')}  files: {stats.get('files_scanned')}  "
        f"skipped: {stats.get('files_skipped')}  time: {stats.get('duration_seconds')} s"
    )
    advisories = stats.get("advisories") or {}
    sets = [
        f"{s['ecosystem']}: {s['source']} as of {s['date'] or 'unknown'} ({s['advisories']})"
        for s in advisories.get("sets", [])
    ]
    lines.append("advisories: " + "; ".join(sets + list(advisories.get("notes", []))))
    return lines


def person_text(result: ReviewResult) -> str:
    """One block per finding: where, what, how to fix it, what to do if it is a false positive."""
    from orchestrator.reviews.checks.advice import advice_for
    from orchestrator.reviews.checks.verdict import is_failing

    lines = header_lines(result)
    if not result.findings:
        lines.append("no findings")
        return "\n".join(lines)
    data_class = str(result.stats.get("data_class"))
    for f in result.findings:
        advice = advice_for(f)
        where = f"{f.file}:{f.line}" if f.file and f.line else (f.file or "(the app as a whole)")
        if f.allowed:
            status = f"allowed: {f.allow_reason}"
        elif f.extra.get("informational"):
            status = "informational"
        else:
            status = "BLOCKS" if is_failing(f, data_class) else "for the approver"
        lines.append("")
        lines.append(f"{where}  {f.severity.upper()}  {f.check}/{f.rule}  [{status}]")
        lines.append(f"  what: {f.message} ({f.preview})")
        lines.append(f"  fix:  {advice.fix}")
        if advice.false_positive != "-":
            lines.append(f"  false positive? {advice.false_positive}")
    return "\n".join(lines)
