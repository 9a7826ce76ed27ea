"""The layers of DESIGN §2 point one way: each package imports only from the layers below it.

``tollguard`` (domain) → ``detectors`` → ``models`` (which may use ``detectors.base`` only)
→ ``engine`` (engine, runner, registry) → ``streams`` (Faust app, replay, web, CLI). Every
import statement of every module is read (lazy imports inside functions included), so an
upward import fails here whatever the import order at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: package -> the first-party packages (or modules) it may import
ALLOWED: dict[str, tuple[str, ...]] = {
    "tollguard": ("tollguard",),
    "detectors": ("tollguard", "detectors"),
    "models": ("tollguard", "detectors.base", "models"),
    "engine": ("tollguard", "detectors", "models", "engine"),
    "streams": ("tollguard", "detectors", "models", "engine", "streams"),
}
FIRST_PARTY = tuple(ALLOWED)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute first-party import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in FIRST_PARTY]


def allowed(package: str, module: str) -> bool:
    return any(module == ok or module.startswith(ok + ".") for ok in ALLOWED[package])


def violations(root: Path = REPO) -> list[str]:
    bad = []
    for package in ALLOWED:
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imports_of(path):
                if not allowed(package, module):
                    bad.append(f"{path.relative_to(root)}:{line} imports {module} (layer {package} may import "
                               f"only {', '.join(ALLOWED[package])})")
    return bad


def test_no_layer_imports_upward() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("package", "module", "ok"),
    [
        ("tollguard", "detectors.base", False),
        ("tollguard", "engine.registry", False),
        ("detectors", "models.detector", False),
        ("detectors", "tollguard.numbers", True),
        ("models", "detectors.base", True),
        ("models", "detectors.arbitrage", False),
        ("models", "engine.core", False),
        ("engine", "streams.app", False),
        ("engine", "models.detector", True),
        ("streams", "engine.runner", True),
    ],
)
def test_the_check_itself_tells_up_from_down(package: str, module: str, ok: bool) -> None:
    assert allowed(package, module) is ok


def test_the_check_reads_lazy_imports_inside_functions(tmp_path: Path) -> None:
    (tmp_path / "tollguard").mkdir()
    (tmp_path / "tollguard" / "m.py").write_text("def f():\n    from engine.core import Engine\n    return Engine\n")
    for package in ALLOWED:
        (tmp_path / package).mkdir(exist_ok=True)
    assert violations(tmp_path) == [
        "tollguard/m.py:2 imports engine.core (layer tollguard may import only tollguard)"
    ]
