"""What every package may raise or type against — the bottom of the import graph (it imports
nothing of the project): user-input errors and the shape of a command-line subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


class InputError(Exception):
    """The file as a whole cannot be read; the message tells the user what is wrong."""


#: ``handler(settings, args) -> exit code`` of a subcommand
Handler = Callable[[Any, argparse.Namespace], int]
#: ``command(name, handler, help) -> parser``: how a feature package adds a subcommand
CommandFactory = Callable[[str, Handler, str], argparse.ArgumentParser]
