"""Output is safe to open: CSV formulas neutralised, terminal escapes shown not obeyed, files owner-only."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import stat

import pytest

from rbac_migrate.cli.render import csv_cell, mask_secrets, printable
from tests.support.cli import run

FORMULAS = ["=cmd|' /C calc'!A0", "@SUM(1+1)", "+1+2", "-2+3", "\tx", "\rx"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def add_leaver(org, uid: str, rdn_value: str) -> str:
    """A disabled account named ``uid`` (any characters) holding the first grant group."""
    dn = f"uid={rdn_value},{org.sample.people_dn}"
    group = next(g for g in org.sample.groups if g.kind == "grant")
    org.slapd.ldapadd(
        f"dn:: {_b64(dn)}\nobjectClass: inetOrgPerson\nuid:: {_b64(uid)}\ncn: x\nsn: x\nemployeeType: leaver\n"
    )
    org.slapd.ldapmodify(f"dn: {group.dn}\nchangetype: modify\nadd: member\nmember:: {_b64(dn)}\n")
    return dn


@pytest.mark.parametrize("value", FORMULAS)
def test_csv_cells_that_start_a_formula_are_quoted(value):
    assert csv_cell(value) == "'" + value
    assert csv_cell("plain") == "plain" and csv_cell(-3) == "-3"


def test_csv_report_neutralises_formulas_from_directory_data(org, tmp_path):
    add_leaver(org, "=cmd|' /C calc'!A0", "\\=cmd|' /C calc'!A0")
    add_leaver(org, "@SUM(1+1)", "@SUM(1\\+1)")
    add_leaver(org, "+evil", "\\+evil")
    assert org.run("snapshot", "take").code == 0
    out = org.run("report", "orphans", "--format", "csv")
    assert out.code == 0, out.err
    users = {row["user_id"] for row in csv.DictReader(io.StringIO(out.out))}
    assert {"'=cmd|' /C calc'!A0", "'@SUM(1+1)", "'+evil"} <= users
    cells = [cell for row in csv.reader(io.StringIO(out.out)) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    listing = org.run("snapshot", "show", "--format", "csv")
    assert listing.code == 0, listing.err
    cells = [cell for row in csv.reader(io.StringIO(listing.out)) for cell in row]
    assert "'@SUM(1+1)" in cells and not [c for c in cells if c[:1] in ("=", "+", "-", "@")]


def test_terminal_control_characters_are_escaped(org):
    add_leaver(org, "evil\x1b[2J\x1b]0;owned\x07", "evil")
    assert org.run("snapshot", "take").code == 0
    out = org.run("report", "orphans")
    assert out.code == 0, out.err
    assert "\x1b" not in out.out and "\x07" not in out.out
    assert "evil\\x1b[2J\\x1b]0;owned\\x07" in out.out
    assert printable("a\u202eb\x9bc") == "a\\u202eb\\x9bc"


def test_store_and_reports_are_owner_only_and_no_link_is_followed(org, tmp_path):
    old = os.umask(0o022)
    try:
        assert org.run("snapshot", "take").code == 0
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me")
        report = tmp_path / "orphans.csv"
        (tmp_path / ".orphans.csv.partial").symlink_to(victim)
        result = org.run("report", "orphans", "--format", "csv", "-o", str(report))
    finally:
        os.umask(old)
    assert result.code == 0, result.err
    assert victim.read_text() == "keep me"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600 and not report.is_symlink()
    store = tmp_path / "state.db"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


def test_new_store_folder_is_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        result = run(["--store", f"sqlite:///{tmp_path}/new/state.db", "db", "upgrade"], {"HOME": str(tmp_path)})
    finally:
        os.umask(old)
    assert result.code == 0, result.err
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "state.db").stat().st_mode) == 0o600


def test_config_show_masks_a_password_in_the_store_url(tmp_path):
    url = "postgresql+psycopg://rbac:s3cret@db.example.org/rbac"
    for fmt in ("table", "json", "csv"):
        result = run(["--store", url, "config", "show", "--format", fmt], {"HOME": str(tmp_path)})
        assert result.code == 0, result.err
        assert "s3cret" not in result.out
        assert "postgresql+psycopg://rbac:***@db.example.org/rbac" in result.out
    assert mask_secrets("sqlite:///x.db") == "sqlite:///x.db"


def test_every_listing_takes_csv(org):
    assert org.run("snapshot", "take").code == 0
    result = org.run("report", "progress", "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert rows and rows[-1]["snapshot"] == "1"
    logged = org.run("audit", "log", "--format", "csv")
    assert logged.code == 0 and logged.out.startswith("id,")
    assert json.loads(org.run("report", "progress", "--format", "json").out)["over_time"]
