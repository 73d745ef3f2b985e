"""Settings precedence, the starter config written by init, and the password sources."""

from __future__ import annotations

import os

import pytest
import yaml

from rbac_migrate.config import SETTINGS, bind_password, load_settings
from rbac_migrate.errors import ConfigError, SecretError
from rbac_migrate.starter import starter_config
from tests.support.cli import assert_one_line_error, run, write_config


def test_precedence_flag_env_file_default(tmp_path):
    config = write_config(tmp_path / "c.yml", grant_base="ou=file", role_base="ou=file", user_base="ou=file")
    env = {"RBAC_MIGRATE_GRANT_BASE": "ou=env", "RBAC_MIGRATE_ROLE_BASE": "ou=env"}
    settings = load_settings({"grant_base": "ou=flag"}, str(config), env)
    assert settings.grant_base == "ou=flag" and settings.sources["grant_base"] == "flag"
    assert settings.role_base == "ou=env" and settings.sources["role_base"] == "environment"
    assert settings.user_base == "ou=file" and settings.sources["user_base"].startswith("file")
    assert settings.member_attribute == "member" and settings.sources["member_attribute"] == "default"


def test_config_named_by_environment(tmp_path):
    config = write_config(tmp_path / "c.yml", store="sqlite:///x.db")
    assert load_settings(environ={"RBAC_MIGRATE_CONFIG": str(config)}).store == "sqlite:///x.db"
    assert load_settings(environ={"RBAC_MIGRATE_STORE": "sqlite:///y.db"}).store == "sqlite:///y.db"


def test_types_lists_and_flavour_defaults():
    settings = load_settings({"peer_attributes": "ou, title", "max_batch_size": "5", "tls_verify": "no"}, environ={})
    assert settings.peer_attributes == ["ou", "title"]
    assert settings.max_batch_size == 5 and settings.tls_verify is False
    assert settings.id_attribute == "uid"
    ad = load_settings({"flavour": "ad"}, environ={})
    assert ad.id_attribute == "sAMAccountName"
    assert "1.2.840.113556.1.4.803" in ad.disabled_filter


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="RBAC_MIGRATE_MAX_BATCH_SIZE: max_batch_size must be a int"):
        load_settings(environ={"RBAC_MIGRATE_MAX_BATCH_SIZE": "ten"})


def test_password_sources(tmp_path):
    settings = load_settings({"bind_dn": "cn=a"}, environ={})
    assert bind_password(settings, environ={"RBAC_MIGRATE_BIND_PASSWORD": "pw"}) == "pw"
    assert bind_password(settings, environ={}, prompt=lambda text: "typed") == "typed"
    with pytest.raises(SecretError, match="no bind password"):
        bind_password(settings, environ={})
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    os.chmod(secret, 0o600)
    from_flag = load_settings({"bind_dn": "cn=a", "bind_password_file": str(secret)}, environ={})
    assert bind_password(from_flag, environ={"RBAC_MIGRATE_BIND_PASSWORD": "env"}) == "from-file"
    config = write_config(tmp_path / "c.yml", bind_dn="cn=a", bind_password_file=str(secret))
    from_file = load_settings(config=str(config), environ={})
    assert bind_password(from_file, environ={"RBAC_MIGRATE_BIND_PASSWORD": "env"}) == "env"
    assert bind_password(from_file, environ={}) == "from-file"
    os.chmod(secret, 0o640)
    with pytest.raises(SecretError, match="readable by others"):
        bind_password(from_file, environ={})


def test_anonymous_bind_needs_no_password():
    assert bind_password(load_settings(environ={}), environ={}) is None


def test_no_password_option_on_the_command_line(tmp_path):
    result = run(["--bind-password", "x", "check"], {"HOME": str(tmp_path)})
    assert result.code == 2


def test_init_writes_every_flag_and_reads_back(tmp_path):
    target = tmp_path / "rbac-migrate.yml"
    args = [
        "init",
        "-o",
        target,
        "--url",
        "ldaps://ldap.example.org",
        "--bind-dn",
        "cn=svc,dc=example,dc=org",
        "--user-base",
        "ou=people,dc=example,dc=org",
        "--user-filter",
        "(objectClass=person)",
        "--grant-base",
        "ou=grants,dc=example,dc=org",
        "--role-base",
        "ou=roles,dc=example,dc=org",
        "--disabled-filter",
        "(employeeType=gone)",
        "--peer-attributes",
        "ou,title",
        "--store",
        "sqlite:///state.db",
    ]
    result = run(args, {"HOME": str(tmp_path)})
    assert result.code == 0, result.err
    settings = load_settings(config=str(target), environ={})
    assert settings.url == "ldaps://ldap.example.org"
    assert settings.peer_attributes == ["ou", "title"]
    assert settings.disabled_filter == "(employeeType=gone)"
    assert settings.user_filter == "(objectClass=person)"
    text = target.read_text()
    assert "# max_batch_size: 10" in text  # the rest is documented, commented out
    assert_one_line_error(run(args, {"HOME": str(tmp_path)}), "already exists", "--force")
    assert run([*args, "--force"], {"HOME": str(tmp_path)}).code == 0


def test_init_refuses_an_exposed_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("x")
    os.chmod(secret, 0o644)
    result = run(["init", "-o", tmp_path / "c.yml", "--bind-password-file", secret], {"HOME": str(tmp_path)})
    assert_one_line_error(result, "readable by others")


def test_starter_config_documents_every_setting():
    text = starter_config({})
    data = yaml.safe_load(text)
    assert data is None  # nothing set, everything commented
    for setting in SETTINGS:
        assert f"# {setting.name}:" in text


def test_config_show_reports_sources(tmp_path):
    config = write_config(tmp_path / "c.yml", grant_base="ou=g")
    result = run(["--config", config, "--set", "max_batch_size=3", "config", "show", "--format", "json"], {})
    rows = {r["setting"]: r for r in yaml.safe_load(result.out)}
    assert rows["max_batch_size"]["value"] == 3 and rows["max_batch_size"]["source"] == "flag"
    assert rows["grant_base"]["source"] == f"file {config}"


def _grant_base_as_read(env: dict, *flags: str) -> tuple[str, str]:
    result = run([*flags, "config", "show", "--format", "json"], env)
    assert result.code == 0, result.err
    row = {r["setting"]: r for r in yaml.safe_load(result.out)}["grant_base"]
    return row["value"], row["source"]


@pytest.mark.parametrize("named_by", ["--config", "RBAC_MIGRATE_CONFIG"])
def test_init_writes_where_the_next_command_reads(tmp_path, monkeypatch, named_by):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "etc" / "rbac.yml"
    target.parent.mkdir()
    flags, env = (["--config", str(target)], {}) if named_by == "--config" else ([], {named_by: str(target)})
    result = run([*flags, "init", "--grant-base", "ou=g,dc=example,dc=org"], {**env, "HOME": str(tmp_path)})
    assert result.code == 0, result.err
    assert result.err == f"wrote {target}; next: rbac-migrate check\n"
    assert not (tmp_path / "rbac-migrate.yml").exists()
    assert _grant_base_as_read({**env, "HOME": str(tmp_path)}, *flags) == ("ou=g,dc=example,dc=org", f"file {target}")


def test_init_output_wins_and_default_is_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"RBAC_MIGRATE_CONFIG": str(tmp_path / "from-env.yml"), "HOME": str(tmp_path)}
    out = tmp_path / "chosen.yml"
    result = run(["--config", tmp_path / "from-flag.yml", "init", "-o", out, "--grant-base", "ou=o"], env)
    assert result.code == 0, result.err
    assert sorted(p.name for p in tmp_path.glob("*.yml")) == ["chosen.yml"]
    assert result.err == f"wrote {out}; next: rbac-migrate --config {out} check\n"
    assert run(["init", "--grant-base", "ou=d"], {"HOME": str(tmp_path)}).code == 0
    assert _grant_base_as_read({"HOME": str(tmp_path)}) == ("ou=d", "file rbac-migrate.yml")


def test_init_into_a_missing_folder_is_one_line(tmp_path):
    result = run(["init", "-o", tmp_path / "no" / "such" / "c.yml"], {"HOME": str(tmp_path)})
    assert_one_line_error(result, f"cannot write {tmp_path / 'no' / 'such' / 'c.yml'}")


HDUNN = "uid=hdunn,ou=people,dc=example,dc=org"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (HDUNN, [HDUNN]),  # the documented form: one DN, not four fragments
        (f"alice, {HDUNN}; bob", ["alice", HDUNN, "bob"]),
        (f"{HDUNN};uid=bob,ou=people,dc=example,dc=org", [HDUNN, "uid=bob,ou=people,dc=example,dc=org"]),
    ],
)
def test_protected_accounts_keep_dns_whole_from_every_source(tmp_path, raw, expected):
    name = "protected_accounts"
    assert load_settings(environ={"RBAC_MIGRATE_PROTECTED_ACCOUNTS": raw}).protected_accounts == expected
    assert load_settings({name: raw}, environ={}).protected_accounts == expected
    as_string = write_config(tmp_path / "s.yml", protected_accounts=raw)
    assert load_settings(config=str(as_string), environ={}).protected_accounts == expected
    as_list = write_config(tmp_path / "l.yml", protected_accounts=expected)
    assert load_settings(config=str(as_list), environ={}).protected_accounts == expected


def test_a_list_setting_given_a_mapping_is_an_error(tmp_path):
    config = write_config(tmp_path / "c.yml", protected_accounts={"uid": "hdunn"})
    with pytest.raises(ConfigError, match="protected_accounts must be a list"):
        load_settings(config=str(config), environ={})


def test_a_protected_dn_protects_its_account_in_any_spelling(org):
    from tests.test_migration import ROLE, candidates

    assert org.run("snapshot", "take").code == 0
    user = candidates(org, 1)[0]
    escaped = "uid=\\" + format(ord(user.dn[4]), "02x") + user.dn[5:]  # 'uid=\\68dunn,...'
    assert escaped != user.dn and user.dn.startswith("uid=")
    for spelling in (user.dn, escaped, f"nobody; {escaped.upper()}"):
        env = {**org.env, "RBAC_MIGRATE_PROTECTED_ACCOUNTS": spelling}
        result = run(["migrate", "plan", "--role", ROLE, "--users", user.uid], env)
        assert_one_line_error(result, f"{user.uid} is a protected account")
    assert org.run("migrate", "plan", "--role", ROLE, "--users", user.uid).code == 0
