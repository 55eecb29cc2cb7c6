"""Secret-scanner benchmark: accuracy on the labelled corpus, and speed next to detect-secrets' CLI.

    python -m bench.secrets            # ~200 MB generated tree
    python -m bench.secrets --mb 20    # quicker

Accuracy: recall and false-positive rate on tests/data/secrets/cases.jsonl.gz and on the generated
cases of bench/labelled.py, per rule family, next to detect-secrets' (default plugins, line by line)
on the same cases. Speed: both scanners over the same generated tree (code files with occasional planted secrets,
built at run time), in the same run; detect-secrets runs as a subprocess from this virtualenv.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.labelled import Case, print_report, secret_cases
from orchestrator.catalog.policy import ReviewLimits
from orchestrator.reviews.checks.secrets import scan_text
from orchestrator.reviews.checks.walk import Deadline, read_text, walk_checkout

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "secrets" / "cases.jsonl.gz"
FAMILIES = {
    "aws": ("aws", "appsync", "bedrock"),
    "github": ("github",),
    "gitlab": ("gitlab",),
    "slack": ("slack",),
    "stripe": ("stripe",),
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "google": ("google", "gcp"),
    "azure": ("azure",),
    "private-key": ("private-key", "private_key", "pem"),
    "jwt": ("jwt",),
    "generic": ("generic", "keyword", "curl", "http", "netrc", "odbc", "psexec", "vmware", "reactapp", "basic_auth"),
}


def family_of(rule: str) -> str:
    """Family of a corpus rule name (`other` for the long tail of single-service rules)."""
    low = rule.lower()
    return next((f for f, words in FAMILIES.items() if any(w in low for w in words)), "other")


def corpus_cases() -> list[Case]:
    """The labelled corpus as cases, one family per rule family (`expect` set on the secrets)."""
    rows = [json.loads(line) for line in gzip.open(CORPUS, "rt", encoding="utf-8")]
    out: list[Case] = []
    for row in rows:
        family = family_of(row["rule"])
        out.append(Case(family, "case.txt", row["text"], family if row["expect"] == "secret" else None))
    return out


def corpus_report() -> None:
    """Print recall and false-positive rate on the corpus per family, next to detect-secrets' on the same cases."""
    if not CORPUS.exists():
        print(f"corpus not found at {CORPUS}; skipping accuracy")
        return
    print_report("labelled corpus (tests/data/secrets)", corpus_cases(), compare=True)


# --------------------------------------------------------------------------- generated tree

_WORDS = (
    "user",
    "order",
    "invoice",
    "report",
    "client",
    "session",
    "item",
    "price",
    "total",
    "config",
    "cache",
    "record",
    "account",
    "event",
    "payload",
    "status",
    "result",
    "queue",
    "batch",
    "export",
    "import",
)


def _ident(rng: random.Random) -> str:
    return "_".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _planted_secret(rng: random.Random) -> str:
    """A line with a credential-shaped value built at run time (never stored in the repository)."""
    alnum = string.ascii_letters + string.digits
    choices = [
        lambda: f'AWS_ACCESS_KEY_ID = "{"AKIA"}{_rand(rng, string.ascii_uppercase + "234567", 16)}"',
        lambda: f'GITHUB_TOKEN = "{"gh" + "p_"}{_rand(rng, alnum, 36)}"',
        lambda: (
            f'slack = "{"xo" + "xb-"}{_rand(rng, string.digits, 12)}-{_rand(rng, string.digits, 12)}-'
            f'{_rand(rng, alnum, 24)}"'
        ),
        lambda: f'stripe_key = "{"sk_" + "live_"}{_rand(rng, alnum, 24)}"',
        lambda: f'db_password = "{_rand(rng, alnum + "!@#", 14)}"',
        lambda: f"api_key: {_rand(rng, alnum, 32)}",
    ]
    return rng.choice(choices)()


def _python_plain(rng: random.Random) -> str:
    a, b, c = _ident(rng), _ident(rng), _ident(rng)
    return (
        f"\n\nclass {a.title().replace('_', '')}:\n"
        f'    """Aggregates {b.replace("_", " ")} rows into {c.replace("_", " ")} totals."""\n\n'
        f"    def __init__(self, {b}: list[dict], limit: int = {rng.randint(10, 5000)}) -> None:\n"
        f"        self.{b} = {b}\n        self.limit = limit\n\n"
        f"    def run(self) -> dict[str, float]:\n        totals: dict[str, float] = {{}}\n"
        f"        for row in self.{b}[: self.limit]:\n"
        f"            totals[row['{c}']] = totals.get(row['{c}'], 0.0) + float(row.get('{a}', 0))\n"
        f"        return dict(sorted(totals.items()))\n"
    )


def _python_chunk(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return _python_plain(rng)
    a, b, c = _ident(rng), _ident(rng), _ident(rng)
    return (
        f"\n\ndef get_{a}({b}, key=None, token=None):\n"
        f'    """Return the {a.replace("_", " ")} for a {b.replace("_", " ")}."""\n'
        f"    {c} = {{}}\n"
        f"    for key, value in {b}.items():\n"
        f"        if key.startswith('{a[:4]}'):\n"
        f"            {c}[key] = value * {rng.randint(1, 999)}\n"
        f"    headers = {{'Authorization': f'Bearer {{token}}', 'X-Request-Id': str({rng.randint(10**5, 10**9)})}}\n"
        f"    password = os.environ.get('{a.upper()}_PASSWORD')\n"
        f"    url = f'https://{a.replace('_', '-')}.internal.corp/api/v{rng.randint(1, 3)}/{{{b}}}'\n"
        f"    return {c}, headers, password, url\n"
    )


def _js_chunk(rng: random.Random) -> str:
    a, b = _ident(rng), _ident(rng)
    if rng.random() < 0.8:
        return (
            f"\nexport function format{a.title().replace('_', '')}(rows, locale = 'en-US') {{\n"
            f"  const total = rows.reduce((sum, row) => sum + Number(row.{b} || 0), 0);\n"
            f"  return new Intl.NumberFormat(locale, {{ maximumFractionDigits: {rng.randint(0, 4)} }}).format(total);\n"
            f"}}\n"
        )
    return (
        f"\nexport async function load{a.title().replace('_', '')}({b}) {{\n"
        f"  const response = await fetch(`${{BASE_URL}}/{a}/${{{b}.id}}`, {{ headers: {{ token: {b}.token }} }});\n"
        f"  const {{ data, status }} = await response.json();\n"
        f"  if (status !== {rng.choice([200, 201, 204])}) throw new Error('failed to load {a}');\n"
        f"  return data.map((row) => ({{ ...row, key: row.id + '-{rng.randint(1, 99)}' }}));\n"
        f"}}\n"
    )


def _yaml_chunk(rng: random.Random) -> str:
    a = _ident(rng)
    return (
        f"{a}:\n  enabled: {rng.choice(['true', 'false'])}\n  retries: {rng.randint(1, 9)}\n"
        f"  timeout_seconds: {rng.randint(5, 300)}\n  secret_ref: ${{{a.upper()}_SECRET}}\n"
        f"  description: handles {a.replace('_', ' ')} for the {_ident(rng)} team\n"
    )


def _md_chunk(rng: random.Random) -> str:
    return (
        f"\n## {_ident(rng).replace('_', ' ').title()}\n\nThe {_ident(rng)} step reads the {_ident(rng)} table and "
        f"writes a summary. Set the API key in your environment, never in the code. Version {rng.randint(1, 9)}."
        f"{rng.randint(0, 20)} changed the token refresh logic.\n"
    )


_KINDS = ((".py", _python_chunk), (".js", _js_chunk), (".yaml", _yaml_chunk), (".md", _md_chunk))


def generate_tree(
    root: Path, total_bytes: int, *, files: int | None = None, secret_every: int = 40, seed: int = 7
) -> dict[str, int]:
    """Write a tree of code files of about `total_bytes` (or exactly `files` files); returns counts."""
    rng = random.Random(seed)
    pools = {ext: [make(rng) for _ in range(300)] for ext, make in _KINDS}
    written = planted = count = 0
    target_files = files or max(1, total_bytes // 10_000)
    per_file = max(200, total_bytes // target_files)
    while (files is None and written < total_bytes) or (files is not None and count < files):
        ext, _ = _KINDS[count % len(_KINDS)]
        parts: list[str] = []
        size = 0
        while size < per_file:
            chunk = rng.choice(pools[ext])
            parts.append(chunk)
            size += len(chunk)
        if count % secret_every == 0:
            parts.insert(rng.randint(0, len(parts)), "\n" + _planted_secret(rng) + "\n")
            planted += 1
        directory = root / f"pkg{count // 500:03d}" / f"mod{count // 50 % 10}"
        directory.mkdir(parents=True, exist_ok=True)
        text = "".join(parts)
        (directory / f"file{count:05d}{ext}").write_text(text, encoding="utf-8")
        written += len(text)
        count += 1
    return {"files": count, "bytes": written, "planted": planted}


def scan_tree(root: Path) -> tuple[int, int, float]:
    """Scan every file with our scanner: (files with findings, bytes, seconds)."""
    limits = ReviewLimits(max_repo_mb=100_000, max_files=10_000_000)
    started = time.perf_counter()
    inventory = walk_checkout(root, limits, Deadline(3600))
    flagged = total = 0
    for file in inventory.files:
        text = read_text(file)
        if text is None:
            continue
        total += len(text)
        flagged += bool(scan_text(text, file.rel))
    return flagged, total, time.perf_counter() - started


def detect_secrets_tree(root: Path) -> tuple[int, float] | None:
    """Run `detect-secrets scan --all-files` on the tree: (files with findings, seconds), None if absent."""
    exe = Path(sys.executable).with_name("detect-secrets")
    if not exe.exists():
        found = shutil.which("detect-secrets")
        if not found:
            return None
        exe = Path(found)
    started = time.perf_counter()
    proc = subprocess.run([str(exe), "scan", "--all-files", str(root)], capture_output=True, text=True, cwd=root)
    elapsed = time.perf_counter() - started
    try:
        results = json.loads(proc.stdout).get("results", {})
    except ValueError:
        print("detect-secrets failed:", proc.stderr[-500:])
        return None
    return len(results), elapsed


def main(argv: list[str] | None = None) -> None:
    """Print corpus accuracy, then scan speed of both tools on a generated tree."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0, help="size of the generated tree (default 200)")
    parser.add_argument("--skip-detect-secrets", action="store_true", help="time only our scanner")
    args = parser.parse_args(argv)
    corpus_report()
    print()
    print_report("generated cases (issue 17 families)", secret_cases(), compare=True)
    with tempfile.TemporaryDirectory(prefix="bench-secrets-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        info = generate_tree(root, int(args.mb * 1_000_000))
        print(
            f"\ngenerated {info['files']} files, {info['bytes'] / 1e6:.1f} MB, {info['planted']} planted secrets "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        flagged, total, ours = scan_tree(root)
        ours_rate = total / 1e6 / ours
        print(f"orchestrator scanner: {ours:7.1f} s  {ours_rate:7.1f} MB/s  files flagged {flagged}")
        if args.skip_detect_secrets:
            return
        theirs = detect_secrets_tree(root)
        if theirs is None:
            print("detect-secrets CLI not available")
            return
        ds_flagged, ds_time = theirs
        ds_rate = total / 1e6 / ds_time
        print(f"detect-secrets CLI:   {ds_time:7.1f} s  {ds_rate:7.1f} MB/s  files flagged {ds_flagged}")
        print(f"speed ratio (orchestrator / detect-secrets): {ours_rate / ds_rate:.1f}x")


if __name__ == "__main__":
    main()
