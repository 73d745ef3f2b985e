"""Raw attribute values as the directory sends them, made into text."""

from __future__ import annotations

BINARY_ATTRIBUTES = {"objectguid", "objectsid"}


def attribute_key(name: str) -> str:
    """Lower case, options dropped: 'member;range=0-1499' → 'member'."""
    return name.lower().split(";", 1)[0]


def decode_value(key: str, value: bytes) -> str:
    """Text form of one raw value; binary identifiers rendered canonically."""
    if key in BINARY_ATTRIBUTES:
        return _binary(key, value)
    return value.decode("utf-8", "replace")


def first_values(raw: dict[str, list[bytes]], keys_cache: dict) -> dict[str, str]:
    """{lower-case attribute: first value as text}; ``keys_cache`` memoises name handling."""
    names = tuple(raw)
    keys = keys_cache.get(names)
    if keys is None:
        keys = keys_cache[names] = [(name, attribute_key(name)) for name in names]
    return {key: decode_value(key, raw[name][0]) for name, key in keys if raw[name]}


def decode(raw: dict[str, list[bytes]]) -> dict[str, list[str]]:
    """{lower-case attribute: [text values]}; ranged parts of one attribute joined."""
    decoded: dict[str, list[str]] = {}
    for name, values in raw.items():
        key = attribute_key(name)
        decoded.setdefault(key, []).extend(decode_value(key, v) for v in values)
    return decoded


def _binary(key: str, value: bytes) -> str:
    if key == "objectguid" and len(value) == 16:
        import uuid  # Active Directory only: its import costs an OpenLDAP snapshot for nothing

        return str(uuid.UUID(bytes_le=value))
    return value.hex()
