"""Imports point down: ``lakehouse`` (its packages config ← catalog ← io ← domain ← cli, each
importing only those before it) imports none of the packages built on it; those import one
another only where listed (the API runs the impact model), ``scripts`` (the command line) sits
on top of all; the API starts without loading any ML engine or Spark; and no module imports
itself round a loop."""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.config.settings import PROJECT_ROOT

UPPER_PACKAGES = {"producers", "streaming_jobs", "ml", "serving_api", "scripts"}
#: what an API worker must not load at start: model training and the engines behind it
NOT_IN_THE_API = {"xgboost", "sklearn", "holidays", "statsforecast", "prophet", "mlflow", "pyspark"}
#: the one module of ``ml`` the API reads (the impact model's result type and path)
API_ML_MODULES = {"ml", "ml.impact_result"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at module level, inside a function or for type
    checking only; for ``from a import b``, ``a`` and ``a.b`` (which may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize(
    "path", sorted((PROJECT_ROOT / "lakehouse").rglob("*.py")), ids=lambda p: p.name
)
def test_lakehouse_imports_no_upper_package(path: Path) -> None:
    upward = {m for m in imported_modules(path) if m.split(".")[0] in UPPER_PACKAGES}
    assert not upward, f"{path.relative_to(PROJECT_ROOT)} imports {sorted(upward)}"


#: the packages of ``lakehouse``, lowest first: each imports only itself and those before it
LAKEHOUSE_LAYERS = ("config", "catalog", "io", "domain", "cli")


@pytest.mark.parametrize(
    "path", sorted((PROJECT_ROOT / "lakehouse").rglob("*.py")), ids=lambda p: p.name
)
def test_lakehouse_packages_import_only_those_below(path: Path) -> None:
    parts = path.relative_to(PROJECT_ROOT / "lakehouse").parts
    if len(parts) == 1:  # lakehouse/__init__.py
        return
    allowed = LAKEHOUSE_LAYERS[: LAKEHOUSE_LAYERS.index(parts[0]) + 1]
    above = {
        m
        for m in imported_modules(path)
        if m.startswith("lakehouse.") and m.split(".")[1] not in allowed
    }
    assert not above, f"{path.relative_to(PROJECT_ROOT)} imports {sorted(above)}"


def test_lakehouse_holds_only_its_packages() -> None:
    loose = {p.name for p in (PROJECT_ROOT / "lakehouse").glob("*.py")} - {"__init__.py"}
    packages = {p.name for p in (PROJECT_ROOT / "lakehouse").iterdir() if p.is_dir()}
    assert loose == set() and packages - {"__pycache__"} == set(LAKEHOUSE_LAYERS)


#: the imports between packages of the same level that are meant: the API runs the impact model
SIDEWAYS = {("serving_api", "ml")}
SIDE_BY_SIDE = sorted(UPPER_PACKAGES - {"scripts"})


@pytest.mark.parametrize(
    "path",
    sorted(p for pkg in SIDE_BY_SIDE for p in (PROJECT_ROOT / pkg).rglob("*.py")),
    ids=lambda p: str(p.relative_to(PROJECT_ROOT)),
)
def test_packages_of_one_level_import_each_other_only_where_meant(path: Path) -> None:
    own = path.relative_to(PROJECT_ROOT).parts[0]
    sideways = {
        m
        for m in imported_modules(path)
        if (top := m.split(".")[0]) in UPPER_PACKAGES and top != own and (own, top) not in SIDEWAYS
    }
    assert not sideways, f"{path.relative_to(PROJECT_ROOT)} imports {sorted(sideways)}"


def loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter has loaded once it imported ``module``."""
    probe = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_api_starts_without_ml_engines_or_spark() -> None:
    loaded = loaded_by("serving_api.app")
    engines = {m for m in loaded if m.split(".")[0] in NOT_IN_THE_API}
    assert not {m.split(".")[0] for m in engines}, sorted(engines)[:20]
    ml = {m for m in loaded if m.split(".")[0] == "ml"} - API_ML_MODULES
    assert not ml, f"the API loads {sorted(ml)}"


def test_every_command_starts_without_the_registry_s_orm_or_arrow() -> None:
    """`./run.sh status`, `logs`, `ingest` … start without SQLAlchemy, Alembic or pyarrow: a
    command imports one where it uses it (`./run.sh status` 0.96 → 0.46 CPU s)."""
    heavy = {"sqlalchemy", "alembic", "pyarrow"} & {
        m.split(".")[0] for m in loaded_by("scripts.cli")
    }
    assert not heavy, sorted(heavy)


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_itself_round_a_loop() -> None:
    """No import loop among the project's modules, however an import is written (inside a
    function or for type checking only, it still ties the two modules to each other)."""
    files = [
        p
        for pkg in ("lakehouse", *UPPER_PACKAGES, "bench")
        for p in (PROJECT_ROOT / pkg).rglob("*.py")
    ]
    modules = {module_name(p): p for p in files}
    graph = {
        name: {m for m in imported_modules(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as loop:
        pytest.fail(f"an import loop: {' -> '.join(loop.args[1])}")


@pytest.mark.parametrize(
    "path", sorted((PROJECT_ROOT / "tests").glob("test_*.py")), ids=lambda p: p.name
)
def test_test_modules_share_helpers_not_each_other(path: Path) -> None:
    """Helpers live in tests/*.py modules that are not tests; a test module imports no other."""
    others = {m for m in imported_modules(path) if m.startswith("tests.test_")}
    assert not others, f"{path.name} imports {sorted(others)}"
