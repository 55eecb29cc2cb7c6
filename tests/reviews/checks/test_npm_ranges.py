"""npm ranges in policy blocks: `^0.x` carets, hyphen ranges and prereleases, against npm's own semantics.

Expected answers follow node-semver's documented range rules (what `npm install` does). The scanner uses
node-semver (a port of npm's library), so every case here must hold.
"""

from __future__ import annotations

import pytest

from orchestrator.reviews.checks.advisories import version_in_range


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        # ^ on 0.x: the left-most non-zero part is the one that may not change.
        ("^0.2.3", "0.2.3", True),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.2.2", False),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        ("^0.x", "0.0.0", True),
        ("^0.x", "0.9.9", True),
        ("^0.x", "1.0.0", False),
        ("^0", "0.5.0", True),
        ("^0", "1.0.0", False),
        ("^0.0.x", "0.0.9", True),
        ("^0.0.x", "0.1.0", False),
        ("^0.0", "0.0.7", True),
        ("^0.0", "0.1.0", False),
        ("^0.1.x", "0.1.9", True),
        ("^0.1.x", "0.2.0", False),
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
    ],
)
def test_caret_and_tilde(spec: str, version: str, expected: bool) -> None:
    """Carets and tildes, with the 0.x rules."""
    assert version_in_range("npm", version, spec) is expected


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        ("1.2.3 - 2.3.4", "1.2.3", True),
        ("1.2.3 - 2.3.4", "2.0.0", True),
        ("1.2.3 - 2.3.4", "2.3.4", True),
        ("1.2.3 - 2.3.4", "2.3.5", False),
        ("1.2.3 - 2.3.4", "1.2.2", False),
        ("1.2.3 - 2.3.4", "1.2.3-alpha", False),
        ("1.2 - 2.3.4", "1.2.0", True),
        ("1.2 - 2.3.4", "1.1.9", False),
        ("1.2.3 - 2.3", "2.4.0", False),
        ("1.2.3 - 2", "3.0.0", False),
        ("1.2.3 - 2.3", "2.3.9", True),
        ("1.2.3 - 2", "2.9.0", True),
        ("<1.0.0 || 1.2.3 - 1.2.5", "1.2.4", True),
    ],
)
def test_hyphen_ranges(spec: str, version: str, expected: bool) -> None:
    """Hyphen ranges are inclusive on both ends; a partial lower bound is filled with zeros."""
    assert version_in_range("npm", version, spec) is expected


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        ("^1.2.3-beta.2", "1.2.3-beta.2", True),
        ("^1.2.3-beta.2", "1.2.3-beta.4", True),
        ("^1.2.3-beta.2", "1.2.3-beta.1", False),
        ("^1.2.3-beta.2", "1.2.3", True),
        ("^1.2.3-beta.2", "1.9.0", True),
        ("~1.2.3-beta.2", "1.2.3-beta.3", True),
        (">=1.0.0-rc.1", "1.0.0-rc.2", True),
        (">=1.0.0-rc.1", "1.0.0", True),
        (">=1.0.0-rc.2", "1.0.0-rc.1", False),
        ("^1.2.3 || ^2.0.0-rc.1", "2.0.0-rc.2", True),
        ("^1.2.3-beta.2", "1.2.4-beta.1", False),
        ("~1.2.3-beta.2", "1.2.4-beta.2", False),
        (">1.2.3", "1.2.4-alpha", False),
        ("<2.0.0", "2.0.0-rc.1", False),
        ("*", "1.0.0-alpha", False),
    ],
)
def test_prereleases(spec: str, version: str, expected: bool) -> None:
    """Prereleases sort before their release and match ranges that name a prerelease of the same version."""
    assert version_in_range("npm", version, spec) is expected


@pytest.mark.parametrize("version", ["not-a-version", "1.2.3.4", "latest"])
def test_unparseable_versions_are_never_in_range(version: str) -> None:
    """A version that is not semver is not matched by any range (it cannot be compared)."""
    assert version_in_range("npm", version, "*") is False
