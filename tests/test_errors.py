"""Bad input: one clear line naming what to fix, a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket

import pytest

from tests.support.cli import assert_one_line_error, run


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(org, **overrides):
    env = dict(org.env)
    env.update(overrides)
    return env


def test_unreachable_server(org):
    port = _closed_port()
    result = run(["--url", f"ldap://127.0.0.1:{port}", "check"], org.env)
    assert_one_line_error(result, f"cannot reach ldap://127.0.0.1:{port}", "connection refused")


def test_silent_server_times_out(org):
    with socket.socket() as listener:  # accepts the connection, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result = run(["--url", f"ldap://127.0.0.1:{port}", "--set", "receive_timeout=1", "check"], org.env)
    assert_one_line_error(result, "did not answer within the timeout")


def test_wrong_password(org):
    result = run(["check"], _env(org, RBAC_MIGRATE_BIND_PASSWORD="not-the-password"))
    assert_one_line_error(result, "wrong bind DN or password")


def test_password_file_readable_by_others(org, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text(org.slapd.admin_password + "\n")
    os.chmod(secret, 0o644)
    env = _env(org)
    del env["RBAC_MIGRATE_BIND_PASSWORD"]
    result = run(["--bind-password-file", str(secret), "check"], env)
    assert_one_line_error(result, f"password file {secret} is readable by others", "chmod 600")
    os.chmod(secret, 0o600)
    assert run(["--bind-password-file", str(secret), "check"], env).code == 0


def test_no_password_and_no_terminal(org):
    env = _env(org)
    del env["RBAC_MIGRATE_BIND_PASSWORD"]
    assert_one_line_error(run(["check"], env), "RBAC_MIGRATE_BIND_PASSWORD")


def test_missing_base_dn(org):
    missing = "ou=nowhere," + org.sample.base_dn
    result = run(["--set", f"grant_base={missing}", "check"], org.env)
    assert_one_line_error(result, f"grant_base {missing} does not exist")
    result = run(["--set", f"grant_base={missing}", "snapshot", "take"], org.env)
    assert_one_line_error(result, "grant_base")


def test_unknown_user_and_group(org):
    assert org.run("snapshot", "take").code == 0
    assert_one_line_error(org.run("access", "show", "nobody-here"), "no user 'nobody-here'")
    user = org.sample.users[0].uid
    assert_one_line_error(org.run("access", "explain", user, "no-such-grant"), "no group 'no-such-grant'")


def test_no_snapshot_yet(org):
    assert_one_line_error(org.run("access", "show", "x"), "no snapshot yet", "snapshot take")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("url: ldap://x\n\tgrant_base: y\n", ("line 2",)),
        ("grant_bse: ou=x\n", ("unknown setting 'grant_bse'", "did you mean 'grant_base'")),
        ("bind_password: hunter2\n", ("bind_password is not accepted",)),
        ("page_size: lots\n", ("page_size must be a int",)),
        ("tls: maybe\n", ("tls must be one of",)),
        ("- a list\n", ("expected 'name: value'",)),
    ],
)
def test_malformed_config(tmp_path, text, fragments):
    config = tmp_path / "bad.yml"
    config.write_text(text)
    result = run(["--config", str(config), "check"], {"HOME": str(tmp_path)})
    assert_one_line_error(result, f"config file {config}", *fragments)


def test_missing_config_file(tmp_path):
    result = run(["check"], {"RBAC_MIGRATE_CONFIG": str(tmp_path / "none.yml")})
    assert_one_line_error(result, "does not exist", "rbac-migrate init")


def test_store_cannot_be_opened(org, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run(["--store", f"sqlite:///{blocker}/sub/state.db", "snapshot", "list"], org.env)
    assert_one_line_error(result, "cannot open store")
    result = run(["--store", "postgresql+psycopg://nobody@127.0.0.1:1/none", "snapshot", "list"], org.env)
    assert_one_line_error(result, "cannot open store postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = run(["--store", "not a url", "snapshot", "list"], org.env)
    assert_one_line_error(result, "store URL 'not a url' is not valid")


def test_bad_url_and_filter(org):
    assert_one_line_error(run(["--url", "http://example.org", "check"], org.env), "is not an LDAP URL")
    result = run(["--set", "user_filter=(objectClass=person", "check"], org.env)
    assert_one_line_error(result, "user_filter", "unbalanced")


def test_unknown_setting_flag_suggests(org):
    result = run(["--set", "role_bsae=x", "check"], org.env)
    assert_one_line_error(result, "unknown setting 'role_bsae'", "did you mean 'role_base'")


def test_usage_errors_exit_2(org):
    result = run(["access", "show"], org.env)
    assert result.code == 2 and "Traceback" not in result.err
    assert run(["no-such-command"], org.env).code == 2


def test_trailing_slash_in_url_is_accepted(org):
    assert run(["--url", org.slapd.url + "/", "check"], org.env).code == 0


def test_console_entry_flushes_output_and_keeps_exit_codes(tmp_path):
    import subprocess
    import sys

    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "RBAC_MIGRATE_STORE": f"sqlite:///{tmp_path}/s.db"}
    ok = subprocess.run([sys.executable, "-m", "rbac_migrate", "--version"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and ok.stdout.strip() == "rbac-migrate, version 0.1.0"
    failed = subprocess.run(
        [sys.executable, "-m", "rbac_migrate", "access", "show", "x"], capture_output=True, text=True, env=env
    )
    assert failed.returncode == 1
    assert failed.stderr == "error: no snapshot yet: run 'rbac-migrate snapshot take'\n"
    usage = subprocess.run([sys.executable, "-m", "rbac_migrate", "nosuch"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "No such command 'nosuch'" in usage.stderr
