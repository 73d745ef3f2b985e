"""The demo runs the story end to end against its own throwaway slapd."""

from __future__ import annotations

from tests.support.cli import run


def test_demo_runs_end_to_end(require_slapd, tmp_path):
    result = run(["demo", "--users", "60", "--seed", "2"], {"HOME": str(tmp_path), "TMPDIR": str(tmp_path)})
    assert result.code == 0, result.err
    assert "$ rbac-migrate check" in result.err
    assert "snapshot 1: 61 users" in result.err  # the sample org and the new joiner
    assert "nested memberOf    yes" in result.out
    assert " → " in result.out  # access explain printed a path
    assert "$ rbac-migrate migrate apply" in result.err and "batch 2 applied" in result.err
    assert "restored" in result.out  # the rollback step undid the wave
    assert "$ rbac-migrate joiner onboard newjoiner --proposal 1" in result.err
    assert "$ rbac-migrate report orphans --format html" in result.err
    assert "\nThe demo's files are in" in result.err and "\\n" not in result.err  # line breaks, not escapes


def test_demo_without_slapd_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("rbac_migrate.demo.sandbox.SBIN_DIRS", (), raising=False)
    result = run(["demo", "--users", "50"], {"HOME": str(tmp_path), "TMPDIR": str(tmp_path)})
    assert result.code == 1
    assert "apt-get install slapd ldap-utils" in result.err
    assert "Traceback" not in result.err
