"""YAML documents parsed the one way the project reads them: safely, with libyaml's parser
where PyYAML was built with it (its wheels are), the pure-Python one otherwise. The
configuration folder is read by every process the platform and its tests start (~66 KB of
YAML): 0.16 CPU s a process with the pure-Python parser, 0.015 with libyaml's."""

from __future__ import annotations

from typing import Any

import yaml

#: the safe loader of the fastest parser available (the same documents, the same values)
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    """The value of the YAML document ``text`` (plain types only; ``yaml.YAMLError`` when it
    is no YAML)."""
    return yaml.load(text, Loader=SAFE_LOADER)
