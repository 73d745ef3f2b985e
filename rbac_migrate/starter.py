"""The starter config file and the configuration reference, both generated from SETTINGS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from .config import FLAVOUR_DEFAULTS, SETTINGS, Setting
from .dn import split_list

SECTIONS = {
    "directory": "Directory profile",
    "store": "State store",
    "migration": "Migration guard rails",
}


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("\n...").strip()


def _default_text(setting: Setting) -> Any:
    if setting.default is not None:
        return setting.default
    return FLAVOUR_DEFAULTS["openldap"].get(setting.name)


def starter_config(given: Mapping[str, Any]) -> str:
    """A commented YAML config: given values set, every other setting shown commented out."""
    lines = [
        "# rbac-migrate configuration. Precedence: command-line flag > RBAC_MIGRATE_<NAME> environment",
        "# variable > this file > default. The bind password never goes here: use bind_password_file",
        "# (mode 600) or the RBAC_MIGRATE_BIND_PASSWORD environment variable.",
    ]
    for section, title in SECTIONS.items():
        lines += ["", f"# --- {title} ---"]
        for setting in (s for s in SETTINGS if s.section == section):
            lines.append(f"# {setting.help}")
            if setting.name in given:
                value = given[setting.name]
                if setting.kind == "list" and isinstance(value, str):
                    value = split_list(value)
                lines.append(f"{setting.name}: {_yaml_value(value)}")
            else:
                default = _default_text(setting)
                shown = _yaml_value(default) if default is not None else ""
                lines.append(f"# {setting.name}: {shown}".rstrip())
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """The configuration reference table for the README."""
    rows = [
        "| setting | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for setting in SETTINGS:
        default = setting.shown_default or _default_text(setting)
        shown = f"`{_yaml_value(default)}`" if default not in (None, []) else "—"
        rows.append(f"| `{setting.name}` | `{setting.env}` | {_cell(shown)} | {_cell(setting.help)} |")
    return "\n".join(rows) + "\n"
