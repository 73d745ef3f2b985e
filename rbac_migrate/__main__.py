"""python -m rbac_migrate: the command line."""

import sys

from .cli import main

sys.exit(main())
