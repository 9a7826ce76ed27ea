"""Pytest at the repository root: what the docstring examples (``--doctest-modules``) cannot import.

``pyproject.toml`` collects the examples of every module under ``tollguard``, ``detectors``,
``models``, ``engine`` and ``streams``. Importing each needs only the core dependencies; a module
whose example needs an optional extra is skipped when that extra is not installed.
"""

from __future__ import annotations

from importlib.util import find_spec

#: Paths (relative to this file) pytest does not collect.
collect_ignore: list[str] = []

if find_spec("sklearn") is None:  # the ``ml`` extra: AnomalyModel's example fits a forest
    collect_ignore.append("models/model.py")
