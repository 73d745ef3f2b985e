"""rbac-migrate: move a directory from person-by-person grants to role-based access, safely."""

__version__ = "0.1.0"
