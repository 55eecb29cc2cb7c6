"""Advisory index benchmark: first use (parse the shipped archive) against the cached index, same run.

    python -m bench.advisories

Prints the time to parse the shipped PyPA snapshot into an index (what the first review on a fresh
data directory pays), to load the cached index in a new process state, and to get the index again in
the same process (what every later review pays), with the ratios against the first.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from orchestrator.reviews.checks import advisory_sets


def _timed(data_dir: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    index = advisory_sets.build_index(advisories_dir=None, data_dir=data_dir)
    return time.perf_counter() - t0, sum(s.count for s in index.sets)


def main() -> None:
    """Time the three ways a review gets its index."""
    with tempfile.TemporaryDirectory(prefix="bench-advisories-") as tmp:
        data_dir = Path(tmp)
        advisory_sets._memo.clear()
        advisory_sets._built.clear()
        first, count = _timed(data_dir)
        advisory_sets._memo.clear()
        advisory_sets._built.clear()
        cached, _ = _timed(data_dir)
        again, _ = _timed(data_dir)
    print(f"advisories in the index: {count}")
    rows = [
        ("first use (parse the archive, write the cache)", first),
        ("cached index, fresh process state", cached),
        ("same process, next review", again),
    ]
    for label, seconds in rows:
        print(f"{label:<48} {seconds * 1000:9.3f} ms  ({first / max(seconds, 1e-9):7.1f}x faster than the first)")


if __name__ == "__main__":
    main()
