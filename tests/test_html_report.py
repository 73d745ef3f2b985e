"""The HTML reports: self-contained, and rendered by a real headless browser whose counts match the JSON."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections import Counter
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rbac_migrate.model import DANGLING, GRANT, Entry, Snapshot
from rbac_migrate.reports.html import orphans_html
from rbac_migrate.reports.orphans import orphan_report
from tests.support.skips import unavailable
from tests.test_reports import make_history, take

CHROMIUM = Path("/usr/bin/chromium")
RENDER_TIMEOUT = 120


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; missing, it skips the test locally and fails it under CI."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return CHROMIUM


def render(browser: Path, page: Path, fragment: str = "") -> str:
    """The DOM after the page's script ran, as headless chromium serialises it."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        argv = [
            str(browser), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--dump-dom", page.resolve().as_uri() + fragment,
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RENDER_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Elements(HTMLParser):
    """Each element's attributes and text, in document order."""

    def __init__(self, markup: str):
        super().__init__()
        self.found: list[tuple[str, dict[str, str], list[str]]] = []
        self.open: list[list[str]] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        texts: list[str] = []
        self.found.append((tag, {k: v or "" for k, v in attrs}, texts))
        if tag not in ("input", "meta", "br", "circle", "line", "polyline"):
            self.open.append(texts)

    def handle_endtag(self, tag):
        if self.open:
            self.open.pop()

    def handle_data(self, data):
        for texts in self.open:
            texts.append(data)

    def all(self, tag: str, **attrs: str) -> list[tuple[dict[str, str], str]]:
        return [
            (a, "".join(t).strip())
            for name, a, t in self.found
            if name == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


@pytest.fixture
def orphan_files(org, tmp_path):
    history = make_history(org, tmp_path)
    feed = str(history.hr_feed)
    html = tmp_path / "orphans.html"
    assert org.run("report", "orphans", "--hr-feed", feed, "--format", "html", "-o", str(html)).code == 0
    document = json.loads(org.run("report", "orphans", "--hr-feed", feed, "--format", "json").out)
    return html, document


def test_html_is_self_contained(orphan_files):
    html, document = orphan_files
    text = html.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in text  # the browser itself refuses any fetch
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|@import|url\(""", text, re.I)
    data = re.search(r'<script type="application/json" id="findings-data">(.*?)</script>', text, re.S)
    assert data and "</" not in data.group(1)
    embedded = json.loads(data.group(1))
    strings = embedded["strings"]
    assert len(embedded["rows"]) == len(document["findings"])
    assert Counter(strings[r[0]] for r in embedded["rows"]) == Counter(
        {k: v for k, v in document["summary"].items() if v}
    )


def test_browser_renders_counts_that_match_the_json(chromium, orphan_files):
    html, document = orphan_files
    dom = Elements(render(chromium, html))
    body = dom.all("body")[0][0]
    assert body.get("data-ready") == "true", "the page script did not finish"
    summary = document["summary"]
    shown = {a["data-category"]: int(t) for a, t in dom.all("td") if "data-category" in a}
    assert shown == summary
    assert int(dom.all("th", id="total")[0][1]) == len(document["findings"])
    counted = {a["value"]: int(a["data-count"]) for a, _ in dom.all("option")}
    assert counted == {"": len(document["findings"]), **summary}  # counted by the script from the data
    rows = [a["data-category"] for a, _ in dom.all("tr") if "data-category" in a]
    assert rows == [f["category"] for f in document["findings"][:250]]  # the first page, in report order
    assert int(dom.all("span", id="shown")[0][0]["data-matching"]) == len(document["findings"])
    snap = document["snapshot"]
    header = dom.all("header")[0][1]
    assert f"#{snap['id']}" in header and snap["source"] in header and snap["bases"]["user_base"] in header
    assert len(dom.all("circle")) == len(summary) * len(document["trend"])


def test_browser_filters_by_category(chromium, orphan_files):
    html, document = orphan_files
    for category in ("mover-leftover", "dangling-member"):
        dom = Elements(render(chromium, html, f"#category={category}"))
        rows = [(a["data-category"], t) for a, t in dom.all("tr") if "data-category" in a]
        wanted = [f for f in document["findings"] if f["category"] == category]
        assert wanted and len(rows) == len(wanted)
        assert {c for c, _ in rows} == {category}
        for finding, (_c, text) in zip(wanted, rows, strict=True):
            assert (finding["user_id"] or finding["member_value"]) in text and finding["group"] in text


def test_progress_html_renders(chromium, org):
    take(org)
    page = org.config.parent / "progress.html"
    result = org.run("report", "progress", "--format", "html", "-o", str(page))
    assert result.code == 0, result.err
    document = json.loads(org.run("report", "progress", "--format", "json").out)
    dom = Elements(render(chromium, page))
    assert dom.all("title")[0][1] == f"Migration progress: snapshot {document['snapshot']['id']}"
    charts = [attrs.get("aria-label") for attrs, _t in dom.all("svg")]
    assert len(charts) == 4 and charts[-1] == "Open and accepted findings"
    rows = [t for _a, t in dom.all("tr")]
    for role in document["roles"]:
        assert any(t.startswith(role["role"]) and role["dn"] in t for t in rows)
    latest = document["over_time"][-1]
    assert f"{latest['share_with_roles']:.1%}" in [t for _a, t in dom.all("td")]


def test_hostile_values_stay_text():
    hostile = "uid=</script><script>alert(1)</script>,ou=p"
    entries = [
        Entry(0, GRANT, "cn=<b>g</b>,ou=g", "<b>g</b>", "g-1"),
        Entry(1, DANGLING, hostile, hostile),
    ]
    snap = Snapshot(datetime(2026, 1, 1, tzinfo=timezone.utc), "ldap://x/?<i>", "openldap", {}, entries, {0: (1,)}, 1)
    page = orphans_html(orphan_report([snap]))
    assert "<script>alert" not in page and "<b>g</b>" not in page and "<i>" not in page
    data = re.search(r'<script type="application/json" id="findings-data">(.*?)</script>', page, re.S)
    assert data and hostile in json.loads(data.group(1))["strings"]
