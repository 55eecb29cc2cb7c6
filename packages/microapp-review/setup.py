"""Builds microapp-review with only the modules of orchestrator/ that the review checks import.

setuptools packages every module of a listed package; `LIGHT_MODULES` narrows the three parent packages
(`orchestrator`, `orchestrator.catalog`, `orchestrator.reviews`) to what orchestrator.reviews.checks needs,
so the light install holds no database, Celery or HTTP code at all. orchestrator.reviews.checks goes in
whole. tests/toolkit/test_light_install.py builds it and runs the review from a fresh venv.
"""

from __future__ import annotations

from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

LIGHT_MODULES: dict[str, set[str]] = {
    "orchestrator": {"__init__", "config", "errors", "documents"},
    "orchestrator.catalog": {"__init__", "enums", "policy", "manifest"},
    "orchestrator.reviews": {"__init__"},
}


class LightBuildPy(build_py):
    """build_py that leaves out the modules of the parent packages the checks do not use."""

    def find_package_modules(self, package: str, package_dir: str) -> list[Any]:
        modules: list[Any] = super().find_package_modules(package, package_dir)
        keep = LIGHT_MODULES.get(package)
        return modules if keep is None else [m for m in modules if m[1] in keep]


setup(cmdclass={"build_py": LightBuildPy})
