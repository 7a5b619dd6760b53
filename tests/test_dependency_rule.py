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


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
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
