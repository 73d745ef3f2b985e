"""Settings: flag > RBAC_MIGRATE_* environment > config file > default; and bind secrets."""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .dn import split_list
from .errors import ConfigError, SecretError

ENV_PREFIX = "RBAC_MIGRATE_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
PASSWORD_ENV = ENV_PREFIX + "BIND_PASSWORD"
DEFAULT_CONFIG_NAMES = ("rbac-migrate.yml", "~/.config/rbac-migrate/config.yml")


def default_store_url() -> str:
    """SQLite file under the user's state directory: zero set-up."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return f"sqlite:///{state / 'rbac-migrate' / 'state.db'}"


@dataclass(frozen=True)
class Setting:
    """One configurable value, with the text that documents it."""

    name: str
    default: Any
    help: str
    kind: str = "str"  # str | int | float | bool | list
    choices: tuple[str, ...] = ()
    section: str = "directory"
    shown_default: str | None = None  # for defaults computed at run time

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("url", None, "LDAP server, e.g. ldaps://ldap.example.org or ldap://dc1:389"),
    Setting("flavour", "openldap", "Directory flavour: openldap or ad", choices=("openldap", "ad")),
    Setting("bind_dn", None, "DN to bind as; leave empty for an anonymous bind"),
    Setting(
        "bind_password_file",
        None,
        f"File holding the bind password, readable only by its owner (else {PASSWORD_ENV}, else a hidden prompt)",
    ),
    Setting(
        "tls",
        "auto",
        "Transport security: auto (ldaps for ldaps:// URLs, else starttls), starttls, ldaps, none",
        choices=("auto", "starttls", "ldaps", "none"),
    ),
    Setting("tls_verify", True, "Verify the server certificate (never turn off in production)", "bool"),
    Setting("tls_ca_file", None, "CA bundle that signed the server certificate (default: system store)"),
    Setting("connect_timeout", 10.0, "Seconds to wait for the TCP connection", "float"),
    Setting("receive_timeout", 60.0, "Seconds to wait for any single answer from the server", "float"),
    Setting("page_size", 1000, "Entries per page for paged searches", "int"),
    Setting(
        "bulk_reader",
        "auto",
        "Library for large reads: auto (python-ldap when installed, else ldap3), python-ldap, ldap3",
        choices=("auto", "python-ldap", "ldap3"),
    ),
    Setting("user_base", None, "Where user accounts live, e.g. ou=people,dc=example,dc=org"),
    Setting("user_filter", None, "LDAP filter selecting user accounts (default depends on flavour)"),
    Setting("id_attribute", None, "Attribute naming a user: uid (openldap) or sAMAccountName (ad)"),
    Setting(
        "peer_attributes",
        None,
        "Attributes that make users peers, comma separated (default depends on flavour)",
        "list",
    ),
    Setting("grant_base", None, "Subtree of managed grant groups (the access to migrate)"),
    Setting("role_base", None, "Subtree of role groups"),
    Setting("member_attribute", "member", "Group membership attribute", choices=("member", "uniqueMember")),
    Setting(
        "disabled_filter",
        None,
        "LDAP filter matching disabled or departed accounts (default depends on flavour)",
    ),
    Setting(
        "transactions",
        "auto",
        "Per-user LDAP transactions (RFC 5805): auto (when the server offers them) or off (role first, then removals)",
        choices=("auto", "off"),
        section="migration",
    ),
    Setting(
        "protected_accounts",
        [],
        "Ids or DNs never touched by any write (a YAML list, or separated by ';' or by commas outside DNs)",
        "list",
    ),
    Setting(
        "require_ticket", False, "Every write needs --ticket REF (kept in the audit log)", "bool", section="migration"
    ),
    Setting(
        "require_approval",
        False,
        "A plan file is applied only after 'migrate approve' by an operator other than its planner",
        "bool",
        section="migration",
    ),
    Setting(
        "store",
        None,
        "State store URL: sqlite:///path.db or postgresql://user@host/db",
        section="store",
        shown_default="sqlite:///~/.local/state/rbac-migrate/state.db",
    ),
    Setting(
        "audit_key_file",
        None,
        "File holding a secret key that signs audit records (HMAC-SHA256), readable only by its owner; "
        "keep it away from the store",
        section="store",
    ),
    Setting("max_batch_size", 10, "Most users one migration batch may touch", "int", section="migration"),
    Setting("max_removals_per_run", 200, "Most member values one run may delete", "int", section="migration"),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

FLAVOUR_DEFAULTS: dict[str, dict[str, Any]] = {
    "openldap": {
        "peer_attributes": ["departmentNumber", "title"],
        "user_filter": "(objectClass=inetOrgPerson)",
        "id_attribute": "uid",
        "disabled_filter": "(|(pwdAccountLockedTime=*)(employeeType=leaver))",
    },
    "ad": {
        "peer_attributes": ["department", "title"],
        "user_filter": "(&(objectCategory=person)(objectClass=user))",
        "id_attribute": "sAMAccountName",
        "disabled_filter": "(userAccountControl:1.2.840.113556.1.4.803:=2)",
    },
}


def suggest(name: str, candidates: list[str] | None = None) -> str:
    """' (did you mean X?)' for the nearest valid name, or ''."""
    close = difflib.get_close_matches(name, candidates or list(BY_NAME), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def convert(setting: Setting, value: Any, origin: str) -> Any:
    """Turn a raw value (string from env/flag, or YAML scalar) into the setting's type."""
    if value is None:
        return None
    try:
        if setting.kind == "list":
            if isinstance(value, str):
                return split_list(value)  # never cut inside a DN
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"'{value}' is not a list")
            return [str(v).strip() for v in value if str(v).strip()]
        if setting.kind == "bool":
            return _to_bool(value)
        if setting.kind in ("int", "float"):
            number = (int if setting.kind == "int" else float)(value)
            if number <= 0:
                raise ValueError("must be positive")
            return number
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {setting.name} must be a {setting.kind} ({exc})") from None
    value = str(value)
    if setting.choices and value not in setting.choices:
        raise ConfigError(f"{origin}: {setting.name} must be one of {', '.join(setting.choices)}, not '{value}'")
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"'{value}' is not true or false")


@dataclass
class Settings:
    """Resolved settings, with where each value came from."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    config_path: Path | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def require(self, *names: str) -> None:
        """Fail with one line naming the first missing setting."""
        for name in names:
            if self.values.get(name) in (None, ""):
                setting = BY_NAME[name]
                raise ConfigError(
                    f"{name} is not set: add it to the config file, set {setting.env}, or run 'rbac-migrate init'"
                )

    @property
    def tls_mode(self) -> str:
        if self.values["tls"] != "auto":
            return self.values["tls"]
        return "ldaps" if str(self.values.get("url") or "").lower().startswith("ldaps://") else "starttls"


def find_config(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: --config, then RBAC_MIGRATE_CONFIG, then the default places."""
    named = explicit or environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (run 'rbac-migrate init' to write one)")
        return path
    for candidate in DEFAULT_CONFIG_NAMES:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    return None


def config_target(output: str | None, explicit: str | None, environ: Mapping[str, str]) -> Path:
    """Where ``init`` writes: -o, else --config, else RBAC_MIGRATE_CONFIG, else ./rbac-migrate.yml.

    The same order ``find_config`` reads in, so the next command finds the file init wrote.
    """
    named = output or explicit or environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAMES[0]
    return Path(named).expanduser()


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse and validate a YAML config file; unknown keys are errors with a suggestion."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"config file {path}{where}: {problem}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected 'name: value' lines at the top level")
    for key in data:
        if key == "bind_password":
            raise ConfigError(
                f"config file {path}: bind_password is not accepted in a file others may read; "
                f"use bind_password_file or {PASSWORD_ENV}"
            )
        if key not in BY_NAME:
            raise ConfigError(f"config file {path}: unknown setting '{key}'{suggest(str(key))}")
    return {key: convert(BY_NAME[key], value, f"config file {path}") for key, value in data.items()}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    config: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting: flag > RBAC_MIGRATE_* environment > config file > default."""
    environ = os.environ if environ is None else environ
    path = find_config(config, environ)
    layers: list[tuple[str, dict[str, Any]]] = [
        ("flag", {k: convert(BY_NAME[k], v, "option") for k, v in (flags or {}).items() if v is not None}),
        ("environment", _from_environ(environ)),
        (f"file {path}" if path else "file", read_config_file(path) if path else {}),
    ]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        for origin, layer in layers:
            if setting.name in layer:
                values[setting.name], sources[setting.name] = layer[setting.name], origin
                break
        else:
            values[setting.name], sources[setting.name] = setting.default, "default"
    _apply_derived_defaults(values)
    return Settings(values, sources, path)


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    found = {}
    for setting in SETTINGS:
        if setting.env in environ and environ[setting.env] != "":
            found[setting.name] = convert(setting, environ[setting.env], f"environment {setting.env}")
    return found


def _apply_derived_defaults(values: dict[str, Any]) -> None:
    for name, default in FLAVOUR_DEFAULTS[values["flavour"]].items():
        if values.get(name) is None:
            values[name] = default
    if values.get("store") is None:
        values["store"] = default_store_url()
    if values.get("url"):
        # ldap3 rejects the trailing slash that people often copy from browsers and docs.
        values["url"] = values["url"].strip().rstrip("/")


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse repeated --set KEY=VALUE options, rejecting unknown keys with a suggestion."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got '{pair}'")
        if key not in BY_NAME:
            raise ConfigError(f"unknown setting '{key}'{suggest(key)}")
        result[key] = value
    return result


def _read_private_file(path: str, what: str) -> tuple[Path, bytes]:
    """The bytes of a secret file that only its owner can read, else a SecretError naming it."""
    file = Path(path).expanduser()
    try:
        info = file.stat()
    except OSError as exc:
        raise SecretError(f"cannot read {what} {file}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{what} {file} is readable by others: run 'chmod 600 {file}'")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise SecretError(f"{what} {file} is not owned by the user running rbac-migrate")
    try:
        return file, file.read_bytes()
    except OSError as exc:
        raise SecretError(f"cannot read {what} {file}: {exc.strerror}") from None


def read_password_file(path: str) -> str:
    """Read a bind password from a file that only its owner can read."""
    file, data = _read_private_file(path, "password file")
    try:
        password = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretError(f"password file {file} is not UTF-8 text") from None
    if not password:
        raise SecretError(f"password file {file} is empty")
    return password


AUDIT_KEY_MIN_BYTES = 16


def read_audit_key(path: str) -> bytes:
    """The audit key from a file that only its owner can read: at least 16 bytes, newline excluded."""
    file, data = _read_private_file(path, "audit key file")
    key = data.rstrip(b"\r\n")
    if len(key) < AUDIT_KEY_MIN_BYTES:
        raise SecretError(
            f"audit key file {file} holds {len(key)} bytes, fewer than {AUDIT_KEY_MIN_BYTES}: "
            f"write a random key, e.g. 'head -c 32 /dev/urandom | base64 > {file}'"
        )
    return key


def bind_password(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> str | None:
    """The bind password, by the usual precedence, else a hidden prompt; None for anonymous."""
    environ = os.environ if environ is None else environ
    if not settings.bind_dn:
        return None
    file_from_flag = settings.sources.get("bind_password_file") == "flag"
    if settings.bind_password_file and (file_from_flag or not environ.get(PASSWORD_ENV)):
        return read_password_file(settings.bind_password_file)
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV]
    if prompt is not None:
        return prompt(f"Bind password for {settings.bind_dn}")
    raise SecretError(f"no bind password for {settings.bind_dn}: set bind_password_file or {PASSWORD_ENV}")
