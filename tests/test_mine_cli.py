"""`role mine` against a real slapd holding a generated noisy organisation: roles by job, with evidence."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

import pytest
import yaml

from rbac_migrate.dn import first_value
from rbac_migrate.mining.rolesfile import load_roles_file
from tests.conftest import Org
from tests.support.cli import assert_one_line_error, run, write_config
from tests.support.noisyorg import NoisyOrg, generate


class NoisyDirectory(Org):
    """A noisy org in the test's own subtree; the people of one job already hold a role for it."""

    def __init__(self, slapd, base: str, tmp_path: Path):
        self.org: NoisyOrg = generate(people=400, jobs=12, seed=5)
        self.job = sorted(self.org.profiles)[0]
        self.on_role = sorted(u for u, job in self.org.jobs.items() if job == self.job)[:3]
        self.role_grants = self.org.profiles[self.job] & frozenset.intersection(
            *(frozenset(self.org.access[u]) for u in self.on_role)
        )
        slapd.ldapadd(self.org.ldif(base, {"role-legacy": (self.role_grants, self.on_role)}))
        self.slapd, self.store_url = slapd, f"sqlite:///{tmp_path / 'state.db'}"
        self.configure(tmp_path, f"ou=people,{base}", f"ou=grants,ou=groups,{base}", f"ou=roles,ou=groups,{base}")


@pytest.fixture
def noisy(slapd, ldap_base, tmp_path) -> NoisyDirectory:
    directory = NoisyDirectory(slapd, ldap_base, tmp_path)
    assert directory.run("snapshot", "take").code == 0
    return directory


def holds(org: NoisyOrg, grants: set[str]) -> set[str]:
    return {user for user, held in org.access.items() if grants <= held}


def test_mine_proposes_one_role_per_job_with_its_evidence(noisy, tmp_path):
    result = noisy.run("role", "mine", "--format", "json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    org = noisy.org
    assert found["method"] == "jobs" and found["format"] == "rbac-migrate roles"
    exact = 0
    for role in found["roles"]:
        (values,) = role["stands_for"]
        job = (values["departmentNumber"], values["title"])
        grants = {first_value(dn) for dn in role["grants"]}
        exact += grants == org.profiles[job]
        people = {u for u, j in org.jobs.items() if j == job}
        assert role["members"] == len(people)
        assert set(role["holders"]) == holds(org, grants) & people
        assert role["coverage"] == len(role["holders"])
        assert role["name"] == "role-" + "-".join(v.lower() for v in job).replace(" ", "-")
    assert exact == len(org.profiles) == len(found["roles"])
    # People already on a role for their job count as its peers and as holders.
    department, title = noisy.job
    legacy = next(r for r in found["roles"] if r["stands_for"] == [{"departmentNumber": department, "title": title}])
    assert set(noisy.on_role) <= set(legacy["holders"])
    extras = {(u, first_value(e["grant"])) for e in found["exceptions"] if e["why"] == "extra" for u in e["holders"]}
    personal = {(u, g) for u, added in org.planted["extra"].items() for g in added if g.startswith("app-")}
    assert personal and personal <= extras
    for exception in found["exceptions"]:
        grant = first_value(exception["grant"])
        for user in exception["holders"]:
            assert (grant in org.access[user]) == (exception["why"] != "missing"), (user, exception)


def test_table_lists_roles_by_job_and_what_stays_direct(noisy):
    document = json.loads(noisy.run("role", "mine", "--format", "json").out)
    result = noisy.run("role", "mine")
    assert result.code == 0, result.err
    for role in document["roles"]:
        (values,) = role["stands_for"]
        line = next(line for line in result.out.splitlines() if line.startswith(role["name"] + " "))
        assert f"{values['departmentNumber']} / {values['title']}" in line
        assert f"{role['coverage']} of {role['members']}" in line
    direct = sum(len(e["holders"]) for e in document["exceptions"] if e["why"] != "missing")
    assert f"{len(document['roles'])} roles for {len(document['roles'])} jobs (1.00 per job)" in result.err
    assert f"{direct:,} grants stay direct" in result.err
    rows = list(csv.DictReader(io.StringIO(noisy.run("role", "mine", "--format", "csv").out)))
    assert sum(r["record"] == "role" for r in rows) == len(document["roles"])
    assert sum(r["record"] == "exception" for r in rows) == len(document["exceptions"])


def test_output_file_is_owner_only_and_loads_as_shown(noisy, tmp_path):
    path = tmp_path / "roles.json"
    result = noisy.run("role", "mine", "--baseline-share", "0.9", "-o", str(path), "--format", "json")
    assert result.code == 0, result.err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == json.loads(result.out)
    loaded = load_roles_file(path)
    assert loaded.roles[0].baseline and loaded.roles[0].name == "role-baseline"
    assert {first_value(g) for g in loaded.roles[0].grants} == {"email", "intranet", "vpn", "chat"}
    assert len(loaded.roles) == len(noisy.org.profiles) + 1
    assert f"wrote {path}" in result.err


def test_exact_mining_still_reproduces_direct_access(noisy, tmp_path):
    result = noisy.run("role", "mine", "--exact", "--format", "json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    got: dict[str, set[str]] = {}
    for role in found["roles"]:
        for holder in role["holders"]:
            got.setdefault(holder, set()).update(role["grants"])
    direct = {u: held - (noisy.role_grants if u in noisy.on_role else set()) for u, held in noisy.org.access.items()}
    assert got == {u: held for u, held in direct.items() if held}
    assert len(found["roles"]) > 1.5 * len(noisy.org.profiles)
    path = tmp_path / "exact.json"
    assert noisy.run("role", "mine", "--exact", "-o", str(path)).code == 0
    assert load_roles_file(path).method == "exact"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exact", "--min-share", "0.8"], "--min-share and --min-job-size apply to mining by job"),
        (["--min-holders", "2"], "--min-holders applies to --exact mining"),
        (["--min-share", "0.3"], "--min-share must be more than 0.5"),
        (["--min-job-size", "0"], "--min-job-size must be at least 1"),
        (["--from-pairs", "pairs.txt", "-o", "roles.json"], "-o writes grants as DNs from a snapshot"),
    ],
)
def test_wrong_options_are_one_line_usage_errors(noisy, args, message):
    assert_one_line_error(noisy.run("role", "mine", *args), message, code=2)


def test_unwritable_output_is_one_line_and_leaves_nothing(noisy, tmp_path):
    result = noisy.run("role", "mine", "-o", str(tmp_path / "nowhere" / "roles.json"))
    assert_one_line_error(result, "cannot write", "No such file or directory")
    assert not (tmp_path / "nowhere").exists()


def test_without_peer_attributes_mining_is_exact_and_says_so(noisy, tmp_path):
    config = yaml.safe_load(noisy.config.read_text()) | {"peer_attributes": []}
    bare = write_config(tmp_path / "bare.yml", **config)
    result = run(["role", "mine", "--format", "json"], {**noisy.env, "RBAC_MIGRATE_CONFIG": str(bare)})
    assert result.code == 0, result.err
    note = "no peer_attributes configured: mining the fewest exact roles instead of roles per job"
    assert result.err_lines[0] == note
    assert "lower_bound" in json.loads(result.out)
