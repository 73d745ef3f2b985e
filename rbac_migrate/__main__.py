"""python -m rbac_migrate: the command line."""

from .cli import run

run()
