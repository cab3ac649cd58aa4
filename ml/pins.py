"""The pinned requirements of a registered forecaster (``ml.bundle``), derived rather than
listed: the third-party imports of every project module the bundle reaches (its import graph
inside ``CODE_PACKAGES``, lazy imports in functions included), mapped to their distributions
and pinned as in ``pyproject.toml`` (direct dependencies) or else ``requirements.lock`` (e.g.
numpy). Runs where the model is logged, i.e. in the checkout; never when it is loaded.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lakehouse.config.settings import PROJECT_ROOT
from ml.bundle import CODE_PACKAGES, ROOT_MODULE

# Needed at run time although no import of ours names it: XGBRegressor is a scikit-learn
# estimator, so unpickling and predicting with it imports sklearn inside xgboost.
RUNTIME_ONLY = ("scikit-learn",)
# Imports that only the bundles of some algorithms reach (top-level module → algorithm prefix).
ONLY_FOR = {"prophet": "prophet", "cmdstanpy": "prophet"}
LOCK_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", re.MULTILINE)


def _module_file(module: str) -> Path | None:
    """The source file of a project module (package or module), None if it is not ours."""
    base = PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of every module imported anywhere in a file (in functions too; for
    ``from a import b`` both ``a`` and ``a.b``, which may be a submodule)."""
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            stem = node.module or ""
            if node.level:  # relative
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                stem = f"{base}.{stem}" if stem else base
            names.add(stem)
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


@cache
def third_party_imports(root: str = ROOT_MODULE) -> frozenset[str]:
    """Top-level names of the non-project, non-standard-library modules imported by the
    project modules reachable from ``root``."""
    seen, todo, found = set(), [root], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if (path := _module_file(module)) is None:
            continue
        parent = module.rpartition(".")[0]
        if parent:  # importing a.b runs a/__init__.py first
            todo.append(parent)
        for name in _imports(path, module):
            top = name.partition(".")[0]
            if top in CODE_PACKAGES:
                todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return frozenset(found)


@cache
def project_pins() -> tuple[dict[str, str], dict[str, str]]:
    """(direct, locked): canonical distribution name → ``name==version`` from
    ``pyproject.toml``'s dependencies and from ``requirements.lock``."""
    direct = {}
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for line in project["project"]["dependencies"]:
        req = Requirement(line)
        direct[canonicalize_name(req.name)] = f"{req.name}{req.specifier}"
    lock = (PROJECT_ROOT / "requirements.lock").read_text(encoding="utf-8")
    locked = {canonicalize_name(n): f"{n}=={v}" for n, v in LOCK_PIN.findall(lock)}
    return direct, locked


def _pin(top: str, distributions: dict[str, list[str]]) -> str:
    """The pin of the distribution providing module ``top``: a direct dependency if one
    provides it (mlflow, not mlflow-skinny), else the locked one."""
    direct, locked = project_pins()
    provided = [canonicalize_name(d) for d in distributions.get(top, ())]
    for pins in (direct, locked):
        if found := [pins[d] for d in provided if d in pins]:
            return found[0]
    raise RuntimeError(f"module {top} is imported but no pinned distribution provides it")


def requirements(algorithm: str) -> list[str]:
    """The pinned requirements of the bundle of ``algorithm``'s models, sorted."""
    direct, locked = project_pins()
    distributions = packages_distributions()
    pins = {(direct | locked)[canonicalize_name(n)] for n in RUNTIME_ONLY}
    for top in third_party_imports():
        if algorithm.startswith(ONLY_FOR.get(top, "")):
            pins.add(_pin(top, distributions))
    return sorted(pins, key=str.lower)
