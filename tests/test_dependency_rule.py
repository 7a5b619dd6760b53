"""Imports point down the layers (ARCHITECTURE.md): a test, not a convention."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"simulator", "fake_systems", "sync_core", "harness", "scenarios", "tui"}
ALLOWED = {
    "simulator": set(),
    "fake_systems": {"simulator"},
    "sync_core": set(),
    "harness": {"simulator", "fake_systems", "sync_core", "scenarios"},
    "scenarios": {"harness", "simulator", "fake_systems"},
    "tui": {"harness", "simulator"},
}


def _imports_by_name(node: ast.AST) -> str | None:
    """The module named in ``importlib.import_module("x.y")`` or
    ``__import__("x")``: an import all the same, one a plain scan misses."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    fn, arg = node.func, node.args[0]
    named = (isinstance(fn, ast.Attribute) and fn.attr == "import_module") or (
        isinstance(fn, ast.Name) and fn.id in ("import_module", "__import__")
    )
    if named and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def imported_packages(path: Path, by_name: bool = False) -> set[str]:
    """Our packages `path` imports; with `by_name`, also those it imports by
    a name given at run time (the harness finds scenarios, and starts the
    TUI, that way on purpose: no import cycle)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif by_name and (module := _imports_by_name(node)) is not None:
            found.add(module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(OURS))
def test_package_imports_only_the_layers_below_it(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for imported in sorted(imported_packages(path) - ALLOWED[package] - {package}):
            bad.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert bad == []


def test_the_checker_sees_a_forbidden_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import os\nfrom simulator.kernel import Kernel\nimport fake_systems.crm as crm\n")
    assert imported_packages(f) == {"simulator", "fake_systems"}


def test_the_checker_sees_an_import_by_name(tmp_path):
    f = tmp_path / "x.py"
    f.write_text(
        "import importlib\n"
        "outbox = importlib.import_module('sync_core.outbox')\n"
        "crm = __import__('fake_systems')\n"
        "name = 'harness.cli'  # a string alone is no import\n"
    )
    assert imported_packages(f, by_name=True) == {"sync_core", "fake_systems"}
    assert imported_packages(f) == set()


def test_the_tui_reaches_the_core_and_the_fakes_only_through_the_harness():
    # The UI sends commands to the harness's world (BusinessWorld's
    # operator actions, its chaos); it imports neither the core nor a fake,
    # not even by name.
    bad = [
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in sorted((ROOT / "tui").rglob("*.py"))
        for imported in sorted(imported_packages(path, by_name=True) & {"sync_core", "fake_systems"})
    ]
    assert bad == []
