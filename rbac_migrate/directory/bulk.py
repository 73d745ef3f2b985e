"""Bulk paged reads through python-ldap (libldap), when it is installed.

Reading 100,000 users and a million member values takes ldap3 about six times as long as
`ldapsearch`, almost all of it in pure-Python BER decoding; libldap decodes in C and keeps a
snapshot within reach of `ldapsearch` itself. Only whole-subtree reads go through here: binds are
checked, and every write is made, with ldap3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..config import Settings
from ..errors import DirectoryError

try:  # optional accelerator: `pip install rbac-migrate[fast]`
    import ldap
    from ldap.controls import SimplePagedResultsControl
    from ldap.ldapobject import LDAPObject
    from ldap.syncrepl import SyncreplConsumer
except ImportError:  # pragma: no cover - exercised where python-ldap is absent
    ldap = None
    LDAPObject = SyncreplConsumer = object

SYNC_REFRESH_REQUIRED = 4096  # RFC 4533 e-syncRefreshRequired: the cookie is too old to resume from


@dataclass
class SyncResult:
    """What one RFC 4533 refresh returned."""

    cookie: str | None
    entries: list[tuple[str, dict[str, list[bytes]]]] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)
    # True after a present phase: every entry not presented is gone. Otherwise deletes were explicit.
    complete: bool = False


class _Connection(LDAPObject, SyncreplConsumer):
    """A python-ldap connection that can also run Content Sync refreshes into ``self.sink``."""

    sink: SyncResult

    def syncrepl_get_cookie(self):
        return self.sink.cookie

    def syncrepl_set_cookie(self, cookie):
        self.sink.cookie = cookie

    def syncrepl_entry(self, dn, attrs, uuid):
        self.sink.entries.append((dn, attrs))

    def syncrepl_delete(self, uuids):
        self.sink.deleted.update(uuids)

    def syncrepl_present(self, uuids, refreshDeletes=False):  # noqa: N803 - python-ldap's name
        if uuids is not None:
            self.sink.present.update(uuids)
        elif not refreshDeletes:
            self.sink.complete = True


SCOPES = {"base": 0, "one": 1, "subtree": 2}


def available() -> bool:
    return ldap is not None


class BulkReader:
    """A second, read-only connection used for large paged searches."""

    def __init__(self, settings: Settings, password: str | None, host: str, port: int, mode: str):
        if ldap is None:
            raise DirectoryError("python-ldap is not installed: pip install 'rbac-migrate[fast]'")
        scheme = "ldaps" if mode == "ldaps" else "ldap"
        self.target = f"{scheme}://{host}:{port}"
        self.page_size = settings.page_size
        try:
            self.conn = _Connection(self.target, bytes_mode=False)
            self._set_options(settings)
            if mode == "starttls":
                self.conn.start_tls_s()
            self.conn.simple_bind_s(settings.bind_dn or "", password or "")
        except ldap.LDAPError as exc:
            raise DirectoryError(f"bulk read connection to {self.target} failed: {_describe(exc)}") from None

    def _set_options(self, settings: Settings) -> None:
        conn = self.conn
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, settings.connect_timeout)
        conn.set_option(ldap.OPT_TIMEOUT, settings.receive_timeout)
        conn.set_option(
            ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND if settings.tls_verify else ldap.OPT_X_TLS_NEVER
        )
        if settings.tls_ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, settings.tls_ca_file)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # apply the TLS options above to this handle

    def search(
        self, base: str, search_filter: str, attributes: Iterable[str], scope: str = "subtree"
    ) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """Yield (dn, {attribute: [raw values]}) page by page.

        The request for the next page goes out before this page is handed over, so the server
        prepares it while the caller works through the current one.
        """
        control = SimplePagedResultsControl(True, size=self.page_size, cookie="")
        request = (base, SCOPES[scope], search_filter, list(attributes))
        msgid: int | None = self._call(base, self.conn.search_ext, *request, serverctrls=[control])
        try:
            while msgid is not None:
                _type, data, _msgid, controls = self._call(base, self.conn.result3, msgid)
                cookie = next((c.cookie for c in controls if c.controlType == control.controlType), None)
                msgid = None
                if cookie:
                    control.cookie = cookie
                    msgid = self._call(base, self.conn.search_ext, *request, serverctrls=[control])
                for dn, raw in data:
                    if dn is not None:  # referrals come back without a DN
                        yield dn, raw
        finally:
            if msgid is not None:  # the caller stopped early: do not leave the server working
                self.conn.abandon(msgid)

    def sync(self, base: str, search_filter: str, attributes: Iterable[str], cookie: str | None) -> SyncResult | None:
        """An RFC 4533 refreshOnly search from ``cookie``; None when the server wants a full reload."""
        self.conn.sink = result = SyncResult(cookie)
        try:
            msgid = self.conn.syncrepl_search(
                base, SCOPES["subtree"], mode="refreshOnly", filterstr=search_filter, attrlist=list(attributes)
            )
            while self.conn.syncrepl_poll(msgid=msgid, all=1):
                pass
        except ldap.LDAPError as exc:
            info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            if info.get("result") == SYNC_REFRESH_REQUIRED:
                return None
            raise DirectoryError(f"content sync under {base} on {self.target} failed: {_describe(exc)}") from None
        return result

    def _call(self, base: str, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ldap.NO_SUCH_OBJECT:
            raise DirectoryError(f"search under {base} failed: no such object") from None
        except ldap.LDAPError as exc:
            raise DirectoryError(f"search under {base} on {self.target} failed: {_describe(exc)}") from None

    def close(self) -> None:
        try:
            self.conn.unbind_s()
        except ldap.LDAPError:
            pass


def _describe(exc: Exception) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    text = info.get("desc") or type(exc).__name__
    if info.get("info"):
        text += f" ({info['info']})"
    return text
