"""The commands a user is told about are the commands ``run.sh`` dispatches: ``./run.sh help``
and the README's Daily tasks list every one of them, and no page names one that does not exist
(nor links a file that does not exist)."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from lakehouse.config.settings import PROJECT_ROOT
from scripts.cli import parser

RUN_SH = PROJECT_ROOT / "run.sh"
COMMAND = re.compile(r"\./run\.sh \[?([a-z][a-z-]*)")
HELP_ALIASES = {"-h", "--help"}


def dispatched() -> set[str]:
    """The commands of run.sh's ``case "$cmd"`` and, through its ``*)`` branch, of scripts.cli."""
    script = RUN_SH.read_text(encoding="utf-8")
    dispatcher = script[script.index('case "$cmd" in') : script.index("esac")]
    patterns = re.findall(r"^  ([^\s()]+)\)", dispatcher, re.MULTILINE)
    names = {name for pattern in patterns for name in pattern.split("|")}
    assert "*" in names, "run.sh no longer hands unknown commands to scripts.cli"
    subparsers = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return (names - {"*"} - HELP_ALIASES) | set(subparsers.choices)


def named_in(text: str) -> set[str]:
    return set(COMMAND.findall(text))


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        ["bash", str(RUN_SH), "help"], capture_output=True, text=True, check=True, timeout=30
    )
    assert named_in(result.stdout) == dispatched()


def test_readme_daily_tasks_list_every_command() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Daily tasks") :]
    section = section[: section.index("\n## ")]
    rows = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `./run.sh")]
    assert set().union(*map(named_in, rows)) == dispatched()


PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_pages_name_only_commands_that_exist() -> None:
    known = dispatched()
    unknown = {
        f"{Path(page).relative_to(PROJECT_ROOT)}: ./run.sh {name}"
        for page in PAGES
        for name in named_in(page.read_text(encoding="utf-8")) - known
    }
    assert not unknown


def test_pages_link_only_files_that_exist() -> None:
    broken = [
        f"{page.relative_to(PROJECT_ROOT)} -> {target}"
        for page in PAGES
        for target in LINK.findall(page.read_text(encoding="utf-8"))
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert not broken


def _calls(function: str) -> set[str]:
    """The ``setup*`` functions that run.sh's shell function ``function`` calls (or runs
    ``at_once``)."""
    script = RUN_SH.read_text(encoding="utf-8")
    body = re.search(rf"^{function}\(\) \{{.*?^\}}", script, re.MULTILINE | re.DOTALL)
    assert body, f"run.sh has no function {function}"
    code = re.sub(r"#.*", "", body.group(0).split("\n", 1)[1])  # the body without comments
    return set(re.findall(r"\b(setup\w*)\b", code))


def _branch(command: str) -> str:
    script = RUN_SH.read_text(encoding="utf-8")
    dispatcher = script[script.index('case "$cmd" in') : script.index("esac")]
    return re.search(rf"^  {command}\)(.*?);;", dispatcher, re.MULTILINE | re.DOTALL).group(1)


def test_running_installs_runtime_only_and_tests_bring_their_tools() -> None:
    test_tools = {
        "setup_chromium",
        "setup_compose_cli",
        "setup_compose_tools",
        "setup_postgresql",
    }
    installs = {"setup_python", "setup_jvm", "setup_platform_debs", "setup_dashboard"}
    assert _calls("setup_installs") == installs
    assert _calls("setup_platform_debs") == {"setup_mosquitto", "setup_prometheus"}
    assert _calls("setup") == {"setup_installs", "setup_class_archive"}
    assert _calls("setup_test_debs") == test_tools
    # the tests install the same, with the dev lock instead of the platform's and their tools
    dev = installs - {"setup_python"} | {"setup_dev_python", "setup_test_debs"}
    assert _calls("setup_dev_installs") == dev
    assert _calls("setup_dev_python") == {"setup_python"}
    assert _calls("setup_dev") == {"setup_dev_installs", "setup_class_archive"}
    assert re.search(r"^\s+setup$", _branch("up"), re.MULTILINE)  # `./run.sh` and `up`
    assert re.search(r"^\s+setup_dev$", _branch("test"), re.MULTILINE)
    # the whole suite installs the same, its class archive built beside the unit tests
    assert _calls("test_suite") == _calls("setup_dev")
    assert "setup_dev" in _branch("setup")  # `./run.sh setup --dev`
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./run.sh test" in ci
