"""
A run report: one self-contained HTML page (no network fetch) with the flow's graph, a
timeline of the run's tasks by sequence and host, and the task table.

The graph comes from the summary recorded with the run, so a report needs only the store.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from typing import Any

from eventor.joins import waiting_in
from eventor.recovery import owner_alive

__all__ = ["render_report"]

_COLORS = {"success": "#3a9a5b", "failure": "#c8453c", "active": "#d9a43a", "ready": "#8a8f98",
           "interrupted": "#7a5ec8", "crashed": "#5a5a5a"}
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; } th, td { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f3f3f3; cursor: pointer; text-align: left; }
.failure { color: #c8453c; } .success { color: #3a9a5b; }
svg text { font: 12px system-ui, sans-serif; }
details pre { max-height: 24em; overflow: auto; background: #f7f7f7; padding: 6px; margin: 4px 0; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
"""
_SCRIPT = """
document.querySelectorAll("table.tasks th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      return a.cells[column].textContent.localeCompare(b.cells[column].textContent, undefined,
                                                       {numeric: true});
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
document.body.setAttribute("data-rendered", "yes");
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _graph_svg(graph: Mapping[str, Any]) -> str:
    """The flow as boxes (steps) and pills (events) in columns by depth, with arrows."""
    events = {e["name"]: e for e in graph.get("events", [])}
    steps = {s["name"] for s in graph.get("steps", [])}
    edges: list[tuple[str, str, str]] = []
    for a in graph.get("assocs", []):
        edges.append((a["event"], a["target"], f"{a['delay']:g}s" if a.get("delay") else ""))
    for s in graph.get("steps", []):
        for status, names in s.get("triggers", {}).items():
            edges.extend((s["name"], n, status) for n in names)
        edges.extend((s["name"], n, "emits") for n in s.get("emits", ()))
    for e in events.values():
        if e.get("expr"):
            edges.extend((n, e["name"], "") for n in events if _mentions(e["expr"], n)
                         and n != e["name"])
        join = e.get("join")
        if join:  # what it joins: an event, or the events an expression names
            joined = join["event"]
            sources = [joined] if joined in events else [
                n for n in events if n != e["name"] and _mentions(joined, n)]
            edges.extend((n, e["name"], f"join over {join['over']}") for n in sources)
    order = list(graph.get("order") or [*events, *steps])
    depth = dict.fromkeys(order, 0)
    for _ in range(len(order)):  # longest path, bounded: loops do not run away
        changed = False
        for a, b, _label in edges:
            if a in depth and b in depth and depth[b] < depth[a] + 1 <= len(order):
                depth[b], changed = depth[a] + 1, True
        if not changed:
            break
    columns: dict[int, list[str]] = {}
    for name in order:
        columns.setdefault(depth[name], []).append(name)
    pos = {}
    for col, names in columns.items():
        for row, name in enumerate(names):
            pos[name] = (20 + col * 230, 20 + row * 56)
    width = 20 + (max(columns, default=0) + 1) * 230
    height = 20 + max((len(v) for v in columns.values()), default=1) * 56
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto" '
             f'role="img" aria-label="flow graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
             'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>']
    for a, b, label in edges:
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            parts.append(f'<line x1="{x1 + 150}" y1="{y1 + 16}" x2="{x2}" y2="{y2 + 16}" '
                         'stroke="#999" marker-end="url(#arrow)"/>')
            if label:
                parts.append(f'<text x="{(x1 + 150 + x2) / 2:.0f}" y="{(y1 + y2) / 2 + 12:.0f}" '
                             'text-anchor="middle" fill="#666" stroke="#fff" stroke-width="3" '
                             f'paint-order="stroke">{_e(label)}</text>')
    pools = {s["name"]: s.get("acquires") or [] for s in graph.get("steps", [])}
    for name, (x, y) in pos.items():
        if pools.get(name):
            held = ", ".join(f"{pool}\u00d7{amount}" for pool, amount in pools[name])
            parts.append(f'<text x="{x + 75}" y="{y + 46}" text-anchor="middle" fill="#7a5ec8">'
                         f'pool {_e(held)}</text>')
        is_step = name in steps
        radius = 4 if is_step else 16
        fill = "#e8f0fb" if is_step else "#f6f1e4"
        parts.append(f'<rect x="{x}" y="{y}" width="150" height="32" rx="{radius}" fill="{fill}" '
                     f'stroke="#777"><title>{_e(name)}</title></rect>')
        short = name if len(name) <= 20 else name[:19] + "\u2026"
        parts.append(f'<text x="{x + 75}" y="{y + 20}" text-anchor="middle">{_e(short)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _mentions(expr: str, name: str) -> bool:
    tokens = expr.replace("(", " ").replace(")", " ").replace("&", " ").replace("|", " ").split()
    return name in tokens


def _timeline_svg(tasks: list[dict[str, Any]]) -> str:
    """One bar per task run, in rows by sequence and host, on a common time axis."""
    ran = [t for t in tasks if t.get("started_at") is not None]
    if not ran:
        return "<p>No task started.</p>"
    start = min(t["started_at"] for t in ran)
    end = max((t.get("ended_at") or t["started_at"]) for t in ran)
    span = max(end - start, 1e-3)
    ran.sort(key=lambda t: (str(t["sequence"]), str(t.get("host")), t["started_at"]))
    rows: dict[str, int] = {}  # one lane per task, grouped by sequence and host
    for t in ran:
        rows.setdefault(_lane(t), len(rows))
    left, width, line = 260, 700, 22
    height = 30 + len(rows) * line
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" '
             f'height="{height}" role="img" aria-label="timeline">']
    for label, row in rows.items():
        parts.append(f'<text x="4" y="{30 + row * line + 14}">{_e(label)}</text>')
    for t in ran:
        row = rows[_lane(t)]
        x = left + (t["started_at"] - start) / span * width
        w = max(((t.get("ended_at") or end) - t["started_at"]) / span * width, 2)
        color = _COLORS.get(t.get("shown_status") or t["status"], "#8a8f98")
        took = (t.get("ended_at") or end) - t["started_at"]
        parts.append(
            f'<rect x="{x:.1f}" y="{30 + row * line}" width="{w:.1f}" height="16" fill="{color}">'
            f'<title>{_e(t["step"])}[{_e(t["sequence"])}] attempt {t["attempt"]}: '
            f'{_e(t["status"])}, {took:.3f}s</title></rect>')
    for tick in range(6):  # a time axis: 0, a fifth, ..., the whole span
        x = left + tick * width / 5
        anchor = "start" if tick == 0 else "end" if tick == 5 else "middle"
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="16" text-anchor="{anchor}">{span * tick / 5:.3g} s</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{color}"></i>{_e(status)}</span>'
                     for status, color in _COLORS.items())
    return f'<p class="legend">{legend}</p>' + "".join(parts)


def _lane(task: Mapping[str, Any]) -> str:
    return (f"{task['sequence']} @ {task.get('host') or '?'} \u00b7 {task['step']}"
            f" #{task['attempt']}")


def _task_rows(tasks: list[dict[str, Any]]) -> str:
    out = []
    for t in tasks:
        took = ("" if t.get("started_at") is None or t.get("ended_at") is None
                else f"{t['ended_at'] - t['started_at']:.3f}s")
        outcome = (f"{t['error_type']}: {t['error_message']}" if t.get("error_type")
                   else (t.get("result") or ""))
        started = ("" if t.get("started_at") is None
                   else time.strftime("%H:%M:%S", time.localtime(t["started_at"])))
        skipped = " (skipped)" if t.get("executor") == "skip" else ""
        status = t.get("shown_status") or t["status"]
        more = "".join(
            f'<details><summary>{label}</summary><pre>{_e(t[key])}</pre></details>'
            for key, label in (("traceback", "traceback"), ("output", "output")) if t.get(key))
        out.append(
            f'<tr><td>{_e(t["step"])}</td><td>{_e(t["sequence"])}</td><td>{t["attempt"]}</td>'
            f'<td class="{_e(status)}">{_e(status)}{skipped}</td>'
            f'<td>{_e(t.get("host"))}</td><td>{started}</td><td>{took}</td>'
            f'<td>{_e(str(outcome)[:300])}{more}</td></tr>')
    return "".join(out)


def render_report(store: Any, run_id: str) -> str:
    """The HTML page for ``run_id``, from what ``store`` recorded."""
    run = store.run(run_id) or {}
    info = run.get("info") or {}
    attempts = store.attempts(run_id)
    tasks = store.tasks(run_id)
    gone = {a["attempt"] for a in attempts if a.get("status") == "running" and not owner_alive(a)}
    for a in attempts:
        if a["attempt"] in gone:
            a["status"] = "interrupted"
    ended = {a["attempt"]: a for a in attempts if a["attempt"] not in gone}
    for t in tasks:
        if t["attempt"] in gone and t["status"] in ("active", "ready"):
            t["shown_status"] = "interrupted"
        crashed = ended.get(t["attempt"])
        if (crashed is not None and crashed.get("status") == "crashed"
                and t.get("started_at") is not None and t.get("ended_at") is None):
            # it ran until its engine's last sign of life, not until the recovery noticed
            last_seen = crashed.get("heartbeat_at") or crashed.get("ended_at")
            t["ended_at"] = max(t["started_at"], last_seen or t["started_at"])
            t["shown_status"] = "crashed"
    tries = store.tries(run_id)
    tries_html = "".join(
        f'<li>{_e(t["step"])}[{_e(t["sequence"])}] attempt {t["attempt"]}, try {t["try"]}: '
        f'<span class="failure">{_e(t["error_type"])}</span>: {_e(t["error_message"])}'
        + (f'<details><summary>traceback</summary><pre>{_e(t["traceback"])}</pre></details>'
           if t.get("traceback") else "") + "</li>" for t in tries)
    last = attempts[-1] if attempts else {}
    graph = info.get("graph")
    waiting = waiting_in(graph, store.triggers(run_id, last["attempt"])) if graph and last else []
    waiting_html = "".join(
        f"<li>join <b>{_e(name)}</b> in sequence {_e(parent)} waits for {len(missing)} of "
        f"{count} children: {_e(', '.join(missing))}</li>"
        for name, parent, missing, count in waiting)
    graph_html = _graph_svg(graph) if graph else "<p>The run recorded no graph.</p>"
    attempts_html = "".join(
        f'<li>attempt {a["attempt"]} ({_e(a["mode"])}): <span class="{_e(a["status"])}">'
        f'{_e(a["status"])}</span>, on {_e(a["host"])}, pid {_e(a["pid"])}'
        + (f'; parameters {_e(a["params"])}' if a.get("params") else "") + "</li>"
        for a in attempts)
    title = f"Eventor run {run_id}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{_e(title)}: {_e(info.get("flow", run.get("program", "")))}</h1>
<p>Status <b class="{_e(last.get("status"))}">{_e(last.get("status"))}</b>;
parameters {_e(info.get("params", {}))}</p>
<ul>{attempts_html}</ul>
{f"<h2>Joins waiting</h2><ul>{waiting_html}</ul>" if waiting_html else ""}
<h2>Flow</h2>
{graph_html}
<h2>Timeline</h2>
{_timeline_svg(tasks)}
{f"<h2>Retried tries</h2><ul>{tries_html}</ul>" if tries_html else ""}
<h2>Tasks</h2>
<table class="tasks"><thead><tr><th>step</th><th>sequence</th><th>attempt</th><th>status</th>
<th>host</th><th>started</th><th>took</th><th>result / error</th></tr></thead>
<tbody>{_task_rows(tasks)}</tbody></table>
<script>{_SCRIPT}</script>
</body></html>
"""
