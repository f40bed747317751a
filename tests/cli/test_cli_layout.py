"""How the command line is laid out: a module per top-level command, no private names shared."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import plinth.cli
import plinth.demo
from plinth.cli.main import cli


def test_each_top_level_command_has_a_module_of_its_own() -> None:
    modules = collections.defaultdict(list)
    for name, command in cli.commands.items():
        assert command.callback is not None
        modules[command.callback.__module__].append(name)
    shared = {module: names for module, names in modules.items() if len(names) > 1}
    assert not shared, shared


def _imported_names(package: Path) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("plinth"):
                found.extend((path.name, node.module, alias.name) for alias in node.names)
    return found


def test_the_cli_and_the_demo_import_no_private_name_of_another_module() -> None:
    private = [
        (where, module, name)
        for package in (plinth.cli, plinth.demo)
        for where, module, name in _imported_names(Path(str(package.__file__)).parent)
        if name.startswith("_") and not name.endswith("__")
    ]
    assert private == []
