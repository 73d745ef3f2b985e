"""Where the directory is: the configured URL made into host, port and the transport to use."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import Settings
from ..errors import ConfigError


def parse_url(url: str) -> tuple[str, int, bool]:
    """Host, port and whether the URL asks for LDAPS; a clear error for anything else."""
    text = (url or "").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
        raise ConfigError(f"url '{url}' is not an LDAP URL: expected ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    secure = parts.scheme.lower() == "ldaps"
    try:
        port = parts.port or (636 if secure else 389)
    except ValueError:
        raise ConfigError(f"url '{url}' has an invalid port") from None
    return parts.hostname, port, secure


def no_answer(target: str) -> str:
    """What to say of a server that took the connection and never answered."""
    return f"{target} did not answer within the timeout: check the server and receive_timeout"


def endpoint(settings: Settings) -> tuple[str, int, str, str]:
    """(host, port, "ldap[s]://host:port", TLS mode) for the configured URL and tls setting."""
    host, port, secure_url = parse_url(settings.url)
    mode = settings.tls_mode
    if secure_url and mode == "starttls":
        raise ConfigError("tls: starttls cannot be used with an ldaps:// url")
    return host, port, f"{'ldaps' if mode == 'ldaps' else 'ldap'}://{host}:{port}", mode
