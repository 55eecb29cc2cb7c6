"""Review benchmark: the full automated review of a generated 10,000-file repository.

    python -m bench.review               # 10,000 files
    python -m bench.review --files 2000 --git

Prints the time the review took (the target is under 30 s on the 2-core reference machine), the verdict
and the findings per check. `--git` makes the tree a real git repository with one commit first.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.secrets import generate_tree
from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks.engine import review_directory

MANIFEST = """\
name: Generated benchmark app
owner: maker@example.com
data_class: internal
description: a large generated repository for timing the review
connectors: [slack, google-sheets]
scopes: [repo:read, sheets:read]
external_endpoints: ["*.internal.corp"]
llm: {uses_llm: true, connector: openai-proxy, masks_pii: true}
"""


def build_repo(root: Path, files: int, *, git: bool) -> dict[str, int]:
    """Generate `files` source files plus a manifest and dependency files; optionally commit them."""
    info = generate_tree(root, files * 5_000, files=files - 3)
    (root / "microapp.yaml").write_text(MANIFEST, encoding="utf-8")
    (root / "requirements.txt").write_text("requests==2.32.3\nflask==3.0.3\npydantic>=2\n", encoding="utf-8")
    (root / "package.json").write_text('{"dependencies": {"lodash": "4.17.21", "left-pad": "^1.3.0"}}\n', "utf-8")
    if git:
        run = {"cwd": root, "check": True, "capture_output": True}
        subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
        subprocess.run(["git", "add", "-A"], **run)  # type: ignore[call-overload]
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench"], **run
        )  # type: ignore[call-overload]
    return {**info, "files": info["files"] + 3}


def main(argv: list[str] | None = None) -> None:
    """Print the egress and PII checks' accuracy on the labelled cases, then generate the repository,
    review it and print the timing."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="number of files (default 10000)")
    parser.add_argument("--git", action="store_true", help="git init and commit the tree before reviewing")
    args = parser.parse_args(argv)
    from bench.labelled import egress_cases, pii_cases, print_report, secret_cases

    print_report("secrets (generated cases)", secret_cases(), compare=True)
    print_report("\nLLM egress", egress_cases())
    print_report("\nPII", pii_cases())
    print("(detect-secrets has no LLM-egress or PII detectors: no column to compare for those two)")
    print()
    policy = load_policy()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        info = build_repo(root, args.files, git=args.git)
        print(
            f"generated {info['files']} files, {info['bytes'] / 1e6:.1f} MB ({info['planted']} planted secrets) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        t1 = time.perf_counter()
        result = review_directory(root, policy=policy)
        elapsed = time.perf_counter() - t1
        by_check = Counter(f.check for f in result.findings)
        print(
            f"review: {elapsed:.2f} s for {result.stats['files_scanned']} files "
            f"({result.stats['bytes_scanned'] / 1e6 / elapsed:.1f} MB/s), verdict {result.verdict}"
        )
        print("findings per check: " + ", ".join(f"{k} {v}" for k, v in sorted(by_check.items())))
        print(f"target: under 30 s — {'met' if elapsed < 30 else 'NOT met'}")


if __name__ == "__main__":
    main()
