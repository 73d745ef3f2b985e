"""Self-contained HTML pages an auditor can open or attach: inline CSS, script and SVG only.

The page's Content-Security-Policy forbids every fetch, so a browser proves it needs no network.
Findings travel as compact JSON (repeated strings stored once) and the script lists them a page
at a time: a large directory's report stays a few megabytes and opens quickly.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape

from .. import __version__
from .orphans import CATEGORIES, OrphanReport
from .progress import ProgressReport
from .provenance import iso
from .svg import PALETTE, Series, line_chart

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
FINDING_COLUMNS = (
    "category", "user_id", "user_dn", "member_value", "group", "group_dn", "first_snapshot", "reason", "action",
)  # fmt: skip
PAGE_SIZE = 250

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;margin:0 auto;max-width:1200px;
padding:0 20px 40px}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dee4}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;
vertical-align:top}th{background:#f6f8fa;position:sticky;top:0}td.num,th.num{text-align:right}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}dl.prov dt{color:#57606a}
dl.prov dd{margin:0}code{font:12px ui-monospace,monospace;background:#f6f8fa;padding:1px 4px;border-radius:3px}
.chart{width:100%;height:auto}.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));
gap:8px 24px}#trend{max-width:760px}.grid{stroke:#eaeef2}.axis{stroke:#8c959f}
.tick{font-size:11px;fill:#57606a}figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
.controls{display:flex;gap:12px;align-items:center;flex-wrap:wrap;margin:8px 0}
.muted{color:#57606a}.dn{font-size:11px;color:#57606a;word-break:break-all}
@media print{.controls,#pager{display:none}th{position:static}}
"""

FINDINGS_JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("findings-data").textContent);
  var S = data.strings, rows = data.rows, PAGE = data.page_size;
  var select = document.getElementById("category"), search = document.getElementById("search");
  var body = document.getElementById("findings-body"), shown = document.getElementById("shown");
  var prev = document.getElementById("prev"), next = document.getElementById("next");
  var current = rows, page = 0, counts = {};
  rows.forEach(function (r) { counts[S[r[0]]] = (counts[S[r[0]]] || 0) + 1; });
  Array.prototype.forEach.call(select.options, function (o) {
    var n = o.value ? (counts[o.value] || 0) : rows.length;
    o.textContent = (o.value || "all categories") + " (" + n + ")";
    o.setAttribute("data-count", String(n));
  });
  function cell(tr, text, sub, title) {
    var td = document.createElement("td");
    td.textContent = text;
    if (title) td.title = title;
    if (sub) { var d = document.createElement("div"); d.className = "dn"; d.textContent = sub; td.appendChild(d); }
    tr.appendChild(td);
  }
  function render() {
    var frag = document.createDocumentFragment(), start = page * PAGE;
    current.slice(start, start + PAGE).forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-category", S[r[0]]);
      cell(tr, S[r[0]]); cell(tr, S[r[1]] || S[r[3]], S[r[1]] ? S[r[2]] : "");
      cell(tr, S[r[4]], "", S[r[5]]); cell(tr, "#" + r[6]); cell(tr, S[r[7]]); cell(tr, S[r[8]]);
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    var end = Math.min(start + PAGE, current.length);
    shown.textContent = current.length ? (start + 1) + "\\u2013" + end + " of " + current.length : "no findings";
    shown.setAttribute("data-matching", String(current.length));
    prev.disabled = page === 0;
    next.disabled = end >= current.length;
  }
  function apply() {
    var cat = select.value, text = search.value.trim().toLowerCase();
    current = rows.filter(function (r) {
      if (cat && S[r[0]] !== cat) return false;
      if (!text) return true;
      return [1, 2, 3, 4, 5, 7].some(function (i) { return S[r[i]].toLowerCase().indexOf(text) >= 0; });
    });
    page = 0;
    render();
  }
  function fromHash() {
    var m = /category=([a-z-]+)/.exec(location.hash);
    select.value = m && select.querySelector('option[value="' + m[1] + '"]') ? m[1] : "";
    apply();
  }
  select.addEventListener("change", function () {
    history.replaceState(null, "", select.value ? "#category=" + select.value : "#");
    apply();
  });
  search.addEventListener("input", apply);
  prev.addEventListener("click", function () { page -= 1; render(); });
  next.addEventListener("click", function () { page += 1; render(); });
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.body.setAttribute("data-render-ms", String(Math.round(performance.now())));
  document.body.setAttribute("data-ready", "true");
})();
"""


def _page(title: str, body: str, script: str = "") -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body>{body}{script}</body></html>\n"
    )


def _script_json(value: object) -> str:
    """JSON that cannot close its <script> element or open a comment inside it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _provenance(items: list[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="prov">{rows}</dl>'


def _snapshot_items(snapshot, flavour: str, bases, generated_at: datetime | None) -> list[tuple[str, str]]:
    when = iso(generated_at or datetime.now(timezone.utc))
    items = [
        ("Snapshot", f"#{snapshot.id}, taken {escape(iso(snapshot.taken_at))}"),
        ("Directory", f"<code>{escape(snapshot.source)}</code> ({escape(flavour)})"),
    ]
    items += [(name.replace("_", " "), f"<code>{escape(dn)}</code>") for name, dn in sorted(bases.items())]
    items.append(("Contents", f"{snapshot.users:,} users, {snapshot.grants:,} grant groups, {snapshot.roles:,} roles"))
    items.append(("Generated", f"{escape(when)} by rbac-migrate {escape(__version__)}"))
    return items


def orphans_html(report: OrphanReport, generated_at: datetime | None = None) -> str:
    """The orphan report as one HTML file: provenance, summary, trend chart, filterable findings."""
    items = _snapshot_items(report.snapshot, report.flavour, report.bases, generated_at)
    history = f"{len(report.trend)} (#{report.trend[0].snapshot.id} to #{report.trend[-1].snapshot.id})"
    items.insert(2, ("Snapshots in history", history))
    items.insert(3, ("HR feed", escape(report.hr_feed) if report.hr_feed else "not given: not-in-hr not checked"))
    items += [("Not judged", escape(line)) for line in report.notes]
    body = (
        "<header><h1>Orphaned and leftover access</h1>"
        f'<p class="muted">Rights that should not be there, why, and what to do.</p>{_provenance(items)}</header>'
        f"<h2>Summary</h2>{_summary_table(report)}"
        f'<h2>Trend</h2><div id="trend">{_trend_chart(report)}</div>'
        f"<h2>Findings</h2>{_findings_section(report)}"
    )
    script = f'<script type="application/json" id="findings-data">{_script_json(_findings_data(report))}</script>'
    script += f"<script>{FINDINGS_JS}</script>"
    return _page(f"Orphaned access: snapshot {report.snapshot.id}", body, script)


def _summary_table(report: OrphanReport) -> str:
    summary = report.summary
    rows = "".join(
        f'<tr><td><a href="#category={cat}"><code>{cat}</code></a></td><td>{escape(CATEGORIES[cat])}</td>'
        f'<td class="num count" data-category="{cat}">{count}</td></tr>'
        for cat, count in summary.items()
    )
    total = sum(summary.values())
    rows += f'<tr><th colspan="2">total</th><th class="num" id="total">{total}</th></tr>'
    return (
        f'<table id="summary"><thead><tr><th>category</th><th>meaning</th><th class="num">count</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _trend_chart(report: OrphanReport) -> str:
    labels = [f"#{p.snapshot.id}" for p in report.trend]
    series = [
        Series(cat, [p.summary.get(cat, 0) for p in report.trend], PALETTE[i % len(PALETTE)])
        for i, cat in enumerate(report.categories)
    ]
    return line_chart("Findings per category in each snapshot", labels, series)


def _findings_section(report: OrphanReport) -> str:
    options = '<option value="">all categories</option>' + "".join(
        f'<option value="{cat}">{cat}</option>' for cat in report.categories
    )
    head = "".join(f"<th>{h}</th>" for h in ("category", "user or value", "group", "first seen", "why", "action"))
    return (
        '<div class="controls"><label>Category <select id="category">'
        f'{options}</select></label><label>Search <input id="search" type="search" size="28"></label>'
        '<span id="pager"><button id="prev" type="button">previous</button> '
        '<span id="shown" class="muted"></span> <button id="next" type="button">next</button></span></div>'
        f'<table id="findings"><thead><tr>{head}</tr></thead><tbody id="findings-body"></tbody></table>'
        "<noscript><p>Listing the findings needs JavaScript; the summary above and the JSON and CSV "
        "formats of <code>rbac-migrate report orphans</code> hold the same data.</p></noscript>"
    )


def _findings_data(report: OrphanReport) -> dict:
    """Each finding as a row of indexes into one list of strings: DNs and reasons repeat a lot."""
    strings: list[str] = []
    index: dict[str, int] = {}

    def s(text: str) -> int:
        found = index.get(text)
        if found is None:
            found = index[text] = len(strings)
            strings.append(text)
        return found

    rows = [
        [s(getattr(f, c)) if c != "first_snapshot" else f.first_snapshot for c in FINDING_COLUMNS]
        for f in report.findings
    ]
    return {"columns": FINDING_COLUMNS, "strings": strings, "rows": rows, "page_size": PAGE_SIZE}


def progress_html(report: ProgressReport, generated_at: datetime | None = None) -> str:
    """Migration progress as one HTML file: provenance, role coverage over time, per-role state."""
    items = _snapshot_items(report.snapshot, report.flavour, report.bases, generated_at)
    labels = [f"#{p.snapshot.id}" for p in report.points]
    share = line_chart(
        "Share of enabled users holding a role",
        labels,
        [Series("holding a role", [p.share for p in report.points], PALETTE[0])],
        percent=True,
    )
    grants = line_chart(
        "Direct grants remaining",
        labels,
        [
            Series("direct grants", [p.direct_grants for p in report.points], PALETTE[1]),
            Series("of which a role also gives", [p.covered for p in report.points], PALETTE[2]),
        ],
    )
    names = sorted({name for p in report.points for name in p.holders}, key=str.lower)
    holders = line_chart(
        "Holders per role",
        labels,
        [
            Series(name, [p.holders.get(name, 0) for p in report.points], PALETTE[i % len(PALETTE)])
            for i, name in enumerate(names)
        ],
    )
    body = (
        f"<header><h1>Migration progress</h1>{_provenance(items)}</header>"
        f'<h2>Over time</h2><div class="charts">{share}{grants}{holders}</div>{_points_table(report)}'
        f"<h2>Roles</h2>{_roles_table(report)}"
        f"{_findings_register(report)}"
    )
    return _page(f"Migration progress: snapshot {report.snapshot.id}", body)


def _findings_register(report: ProgressReport) -> str:
    """Open findings over time and the mean time to remediate: the continual-improvement register."""
    metrics = report.findings
    if metrics is None:
        return ""
    labels = [f"#{snapshot}" for snapshot, *_ in metrics.over_time]
    chart = line_chart(
        "Open and accepted findings",
        labels,
        [
            Series("open", [o for *_, o, _a in metrics.over_time], PALETTE[3]),
            Series("accepted", [a for *_, a in metrics.over_time], PALETTE[4]),
        ],
    )
    mttr = metrics.mean_days_to_remediate
    items = [(status, f"{count:,}") for status, count in metrics.statuses.items()]
    items.append(("mean time to remediate", "none remediated yet" if mttr is None else f"{mttr:.1f} days"))
    items.append(("remediated by a batch", f"{metrics.by_batch:,} of {metrics.remediated:,}"))
    return f'<h2>Findings register</h2><div id="findings-register">{_provenance(items)}{chart}</div>'


def _table(table_id: str, headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    head = "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _points_table(report: ProgressReport) -> str:
    rows = [
        [f"#{p.snapshot.id}", escape(iso(p.snapshot.taken_at)), f"{p.users:,}", f"{p.with_roles:,}",
         f"{p.share:.1%}", f"{p.direct_grants:,}", f"{p.covered:,}"]
        for p in report.points
    ]  # fmt: skip
    headers = ["snapshot", "taken", "users", "holding a role", "share", "direct grants", "a role also gives"]
    return _table("over-time", headers, rows, {2, 3, 4, 5, 6})


def _roles_table(report: ProgressReport) -> str:
    rows = [
        [f'{escape(r.role)}<div class="dn">{escape(r.dn)}</div>', str(r.holders), str(r.still_direct),
         str(r.batches), str(r.migrated), str(r.rolled_back), str(r.conflicts), str(r.pending), escape(r.state)]
        for r in report.roles
    ]  # fmt: skip
    headers = ["role", "holders", "still direct", "batches", "migrated", "rolled back", "conflicts", "pending", "state"]
    return _table("roles", headers, rows, set(range(1, 8)))
