"""RFC 4533 messages: our small BER reader and writer against python-ldap's pyasn1 definitions."""

from __future__ import annotations

import uuid

import pytest

from rbac_migrate.directory import contentsync

syncrepl = pytest.importorskip("ldap.syncrepl")
encoder = pytest.importorskip("pyasn1.codec.ber.encoder")
univ = pytest.importorskip("pyasn1.type.univ")

U1, U2 = uuid.UUID(int=0x0123456789ABCDEF0011223344556677), uuid.UUID(int=0xFEDCBA98765432100123456789ABCDEF)


@pytest.mark.parametrize("cookie", [None, "rid=000,csn=20261202120000.000000Z#000000#000#000000"])
def test_the_request_is_encoded_as_python_ldap_encodes_it(cookie):
    reference = syncrepl.SyncRequestControl(cookie=cookie, mode="refreshOnly").encodeControlValue()
    assert contentsync.request_value(cookie) == reference


def test_a_long_cookie_gets_a_long_form_length():
    cookie = "c" * 300
    value = contentsync.request_value(cookie)
    assert value == syncrepl.SyncRequestControl(cookie=cookie, mode="refreshOnly").encodeControlValue()


@pytest.mark.parametrize(("state", "number"), [("present", 0), ("add", 1), ("modify", 2), ("delete", 3)])
@pytest.mark.parametrize("cookie", [None, "rid=001,csn=x"])
def test_sync_state_values_decode_as_python_ldap_decodes_them(state, number, cookie):
    value = syncrepl.SyncStateValue()
    value.setComponentByName("state", syncrepl.SyncStateOp(number))
    value.setComponentByName("entryUUID", syncrepl.SyncUUID(U1.bytes))
    if cookie is not None:
        value.setComponentByName("cookie", syncrepl.SyncCookie(cookie))
    raw = encoder.encode(value)
    reference = syncrepl.SyncStateControl.__new__(syncrepl.SyncStateControl)
    reference.decodeControlValue(raw)
    found = contentsync.state_value(raw)
    assert (found.state, found.uuid, found.cookie) == (number, reference.entryUUID, reference.cookie)
    assert reference.state == state


def _info(choice: str, **fields) -> bytes:
    info = syncrepl.SyncInfoValue()
    component = info.getComponentByName(choice)
    if choice == "newcookie":
        info.setComponentByName(choice, component.clone(fields["cookie"]))
        return encoder.encode(info)
    for name, value in fields.items():
        if name == "syncUUIDs":
            uuids = component.getComponentByName("syncUUIDs").clone()
            for position, item in enumerate(value):
                uuids.setComponentByPosition(position, syncrepl.SyncUUID(item.bytes))
            value = uuids
        component.setComponentByName(name, value)
    info.setComponentByName(choice, component)
    return encoder.encode(info)


def test_a_new_cookie():
    found = contentsync.info_value(_info("newcookie", cookie="rid=1"))
    assert (found.kind, found.cookie) == (contentsync.NEW_COOKIE, "rid=1")


@pytest.mark.parametrize("choice", ["refreshDelete", "refreshPresent"])
@pytest.mark.parametrize("done", [None, False, True])
def test_the_end_of_a_phase_defaults_to_refresh_done(choice, done):
    fields = {"cookie": "rid=2"} | ({} if done is None else {"refreshDone": done})
    raw = _info(choice, **fields)
    reference = syncrepl.SyncInfoMessage(raw)
    found = contentsync.info_value(raw)
    assert found.cookie == getattr(reference, choice)["cookie"] == "rid=2"
    assert found.flag is getattr(reference, choice)["refreshDone"] is (done is not False)


@pytest.mark.parametrize("deletes", [None, False, True])
def test_a_set_of_identities(deletes):
    fields = {"syncUUIDs": [U1, U2]} | ({} if deletes is None else {"refreshDeletes": deletes})
    raw = _info("syncIdSet", **fields)
    reference = syncrepl.SyncInfoMessage(raw).syncIdSet
    found = contentsync.info_value(raw)
    assert found.kind == contentsync.SYNC_ID_SET
    assert found.uuids == reference["syncUUIDs"] == [str(U1), str(U2)]
    assert found.flag is reference["refreshDeletes"] is bool(deletes)
    assert found.cookie is None


@pytest.mark.parametrize("deletes", [False, True])
def test_sync_done(deletes):
    value = syncrepl.SyncDoneValue()
    value.setComponentByName("cookie", syncrepl.SyncCookie("rid=3"))
    value.setComponentByName("refreshDeletes", univ.Boolean(deletes))
    raw = encoder.encode(value)
    reference = syncrepl.SyncDoneControl.__new__(syncrepl.SyncDoneControl)
    reference.decodeControlValue(raw)
    assert contentsync.done_value(raw) == (reference.cookie, reference.refreshDeletes) == ("rid=3", deletes)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x30",  # a tag without a length
        b"\x30\x05\x0a\x01\x01",  # shorter than it says
        b"\x30\x07\x0a\x01\x01\x04\x02ab",  # an entryUUID of two bytes
        b"\x30\x84\xff\xff\xff\xff\x0a",  # a length far past the end
        b"\x30\x80\x00\x00",  # indefinite length, which RFC 4533 never uses
    ],
)
def test_malformed_state_values_are_refused(raw):
    with pytest.raises(contentsync.MalformedMessage):
        contentsync.state_value(raw)


def test_an_unknown_info_choice_is_refused():
    with pytest.raises(contentsync.MalformedMessage):
        contentsync.info_value(b"\xa7\x00")
