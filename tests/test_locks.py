"""The three locks of pyproject.toml (``./run.sh lock``): the platform's (requirements.lock, what
the image and ``./run.sh setup`` install) without any test tool, the tests' and the analysts'
(requirements-dev.lock, requirements-analyst.lock) on the very same versions; s3-init's boto3
declared, and the notebook command of docs/querying.md served by the ``analyst`` extra."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lakehouse.config.settings import PROJECT_ROOT

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", re.MULTILINE)
TEST_TOOLS = {"pytest", "pytest-timeout", "chispa", "ruff", "schemathesis", "playwright", "moto"}


def pins(name: str) -> dict[str, str]:
    text = (PROJECT_ROOT / name).read_text(encoding="utf-8")
    return {canonicalize_name(package): version for package, version in PIN.findall(text)}


def project() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def direct(requirements: list[str]) -> dict[str, str]:
    """Each pinned requirement's name and version (its extras left aside)."""
    parsed = map(Requirement, requirements)
    return {canonicalize_name(r.name): str(r.specifier).removeprefix("==") for r in parsed}


def test_the_platform_lock_has_no_test_tool_and_the_others_agree_with_it() -> None:
    runtime, dev, analyst = (pins(f"requirements{s}.lock") for s in ("", "-dev", "-analyst"))
    assert TEST_TOOLS.isdisjoint(runtime)
    assert TEST_TOOLS.issubset(dev)
    for extra in (dev, analyst):
        assert {p: v for p, v in runtime.items() if extra.get(p) != v} == {}
    assert "jupyterlab" in analyst and "jupyterlab" not in dev  # heavy: not for the tests
    extras = project()["optional-dependencies"]
    assert direct(extras["dev"]).items() <= dev.items()
    assert direct(extras["analyst"]).items() <= analyst.items()
    assert direct(project()["dependencies"]).items() <= runtime.items()


def test_s3_init_and_the_image_install_the_platform_lock() -> None:
    assert "boto3" in direct(project()["dependencies"])  # s3-init's own, not through moto
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.findall(r"-r (\S+\.lock)", dockerfile) == ["requirements.lock"]


def test_the_documented_notebook_command_is_the_analyst_extras() -> None:
    """``.venv/bin/jupyter lab`` runs ``jupyter-lab``, the entry point jupyterlab declares; the
    ``jupyter`` command itself comes with the platform's kernel (jupyter_core)."""
    querying = (PROJECT_ROOT / "docs" / "querying.md").read_text(encoding="utf-8")
    assert ".venv/bin/jupyter lab " in querying
    assert "./run.sh setup --analyst" in querying
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert scripts["jupyter"].value.startswith("jupyter_core")
    assert "jupyter-core" in pins("requirements.lock")
    assert direct(project()["optional-dependencies"]["analyst"]) == {
        "jupyterlab": pins("requirements-analyst.lock")["jupyterlab"]
    }
