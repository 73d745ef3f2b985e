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
    "psycopg": "store",
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
