"""The edges stay at the edges: ldap3 only in directory/, SQLAlchemy only in store/, click only in cli/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rbac_migrate"
ALLOWED = {
    "ldap3": "directory",
    "ldap": "directory",
    "sqlalchemy": "store",
    "alembic": "store",
    "psycopg2": "store",
    "click": "cli",
    "tabulate": "cli",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_third_party_imports_stay_in_their_layer(path):
    layer = path.relative_to(PACKAGE).parts[0]
    for module in _imports(path):
        if module in ALLOWED:
            assert layer == ALLOWED[module], f"{path.relative_to(PACKAGE)} imports {module}"


# Modules that compute without I/O: they take a snapshot, a change set or a view handed to them.
PURE = (
    "access.py",
    "changes.py",
    "changeset.py",
    "dn.py",
    "errors.py",
    "ldif.py",
    "model.py",
    "proposals.py",
    "audit.py",
    "roles/catalogue.py",
    "mining",
    "migration/plan.py",
)
EDGES = ("store", "directory", "connections", "cli")
FEATURES = ("reports", "roles", "migration", "mining", "proposals", "playbooks", "snapshot", "cli", "connections")


def _internal(path: Path) -> set[str]:
    """Top-level rbac_migrate modules a file imports, relative or absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(PACKAGE).parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts] if node.module else [base + [alias.name] for alias in node.names]
            elif node.module and node.module.startswith("rbac_migrate."):
                names = [node.module.split(".")[1:]]
            else:
                continue
            found |= {name[0] for name in names if name}
    return found


def _files(patterns) -> list[Path]:
    found = []
    for pattern in patterns:
        target = PACKAGE / pattern
        found += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return found


@pytest.mark.parametrize("path", _files(PURE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_modules_import_no_edge(path):
    assert path.exists(), path
    imported = _internal(path)
    assert not imported & set(EDGES), f"{path.relative_to(PACKAGE)} imports {sorted(imported & set(EDGES))}"


@pytest.mark.parametrize("path", _files(["store"]), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_store_imports_no_feature(path):
    imported = _internal(path) - {"store"}
    assert not imported & set(FEATURES), f"{path.relative_to(PACKAGE)} imports {sorted(imported & set(FEATURES))}"


def test_the_layer_check_sees_relative_imports():
    """The checker itself: a relative import of the store from a pure module is caught."""
    probe = PACKAGE / "mining" / "_probe_for_test.py"
    probe.write_text("from ..store import open_store\n")
    try:
        assert "store" in _internal(probe)
    finally:
        probe.unlink()
