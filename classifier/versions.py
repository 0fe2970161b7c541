"""Versions of the packages a run depends on, for run.json and the report header."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("head-roles", "torch", "transformer-lens", "transformers", "datasets", "numpy", "pandas", "scikit-learn")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
