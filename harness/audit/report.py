"""The audit report's files: JSON (the source), a Markdown summary and one self-contained HTML page.

Secrets are masked once, on the report's data, before any view is rendered (``harness.redact``):
a receipts directory may sit under a path or URI that carries credentials. File names come from
the audited directory, so every value passes ``md_escape`` or ``esc`` before it reaches a page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from harness.redact import mask_values, printable, printable_values, redact
from harness.report.write import md_table, safe_stem
from harness.report.format import esc, md_code, md_escape
from harness.report.tables import Table

SHOWN_KEYS = 200  # per view; the JSON holds every key
SHOWN_FILES = 200
PAGE_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:72em}table{border-collapse:collapse}"
              "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
              ".ok{background:#e8f5e9}.bad{background:#ffebee}.banner{padding:.6em 1em;border-radius:4px}")


def write_audit_report(report: dict[str, Any], directory: Path, stem: str | None = None,
                       secrets: Iterable[str] = ()) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.html`` into directory; return them by format.

    ``secrets``: values to mask wherever they appear (an audited profile's ``secret_values()``)."""
    report = redact(mask_values(json.loads(json.dumps(report)), secrets))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or safe_stem(report["label"])
    paths = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md", "html": directory / f"{stem}.html"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(render_audit_markdown(report), encoding="utf-8")
    paths["html"].write_text(render_audit_html(report), encoding="utf-8")
    return paths


def _tables(report: dict[str, Any]) -> list[tuple[str, Table]]:
    """The report's sections, the same for Markdown and HTML."""
    counts = report["counts"]
    keys = report["keys"]
    key_rows = [[k["key"], str(len(k["receipts"])), ", ".join(k["receipts"]) or "—", ", ".join(k["unreadable"]) or "—",
                 ", ".join(k["temporary"]) or "—",
                 ("DISAGREE: " if k["amounts_disagree"] else "") + "; ".join(
                     f"{n}: {a or 'none printed'}" for n, a in k["amounts"].items()) or "—"]
                for k in keys[:SHOWN_KEYS]]
    more = f"{len(keys) - SHOWN_KEYS} more key(s) in the JSON report" if len(keys) > SHOWN_KEYS else ""
    files = ([[u["file"], "unreadable", u["error"] or ""] for u in report["unreadable"]]
             + [[n, "temporary or partial", ""] for n in report["temporary"]]
             + [[n, "no key found", ""] for n in report["keyless"]]
             + [["", "vanished", p] for p in report["problems"]])
    return [
        ("Summary", _table(["What", "Count"], [[k.replace("_", " "), v] for k, v in counts.items()])),
        ("Keys with duplicate, unreadable or temporary receipts",
         _table(["Key", "Receipts", "Files", "Unreadable", "Temporary", "Amounts printed"], key_rows,
                more or ("" if key_rows else "none: every key has one readable receipt"))),
        ("Files that are not one readable receipt of a key",
         _table(["File", "Why", "Detail"], files[:SHOWN_FILES],
                f"{len(files) - SHOWN_FILES} more in the JSON report" if len(files) > SHOWN_FILES else "")),
    ]


def _table(headers: list[str], rows: list[list[Any]], note: str = "") -> Table:
    table = Table(headers, note=note)
    for row in rows:
        table.add(row)  # clipped: a directory may hold very long names
    return table


def render_audit_markdown(report: dict[str, Any]) -> str:
    icon = "❌" if report["exit_code"] else "✅"
    lines = [f"## {icon} race-harness audit `{md_code(report['label'])}` — {md_escape(report['summary'])}", "",
             f"**Directory:** {md_escape(report['directory'])}  ",
             f"**Key rules:** {md_escape(', '.join(report['key_rules']))}; **amounts:** "
             f"{md_escape(report['amount_rule'])}  ",
             f"**Audited:** {md_escape(report['created'])} in {report['elapsed_s']} s  ",
             f"**Exit code:** {report['exit_code']}", ""]
    for title, table in _tables(report):
        lines += [f"### {title}", "", *md_table(table), ""]
    return "\n".join(lines).rstrip() + "\n"


def render_audit_html(report: dict[str, Any]) -> str:
    """One page that loads nothing from elsewhere; every value escaped."""
    banner = "bad" if report["exit_code"] else "ok"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>race-harness audit "
             f"{esc(report['label'])}</title><style>{PAGE_STYLE}</style></head><body>",
             f"<h1>race-harness audit {esc(report['label'])}</h1>",
             f"<p class='banner {banner}'>{esc(report['summary'])} (exit code {report['exit_code']})</p>",
             f"<p>Directory: <code>{esc(report['directory'])}</code><br>Key rules: "
             f"<code>{esc(', '.join(report['key_rules']))}</code>; amounts: <code>{esc(report['amount_rule'])}</code>"
             f"<br>Audited {esc(report['created'])} in {esc(report['elapsed_s'])} s</p>"]
    for title, table in _tables(report):
        parts.append(f"<h2>{esc(title)}</h2>")
        if table.rows:
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in table.headers) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table.rows]
            parts.append("</table>")
        if table.note:
            parts.append(f"<p><em>{esc(table.note)}</em></p>")
    return "\n".join(parts + ["</body></html>"]) + "\n"


def audit_stdout(report: dict[str, Any], paths: dict[str, Path], shown: int = 10) -> str:
    """What the command prints: the summary, the first duplicated keys and where the reports are; every name
    from the directory (a file, a key) escaped for the terminal, newlines included."""
    report = printable_values(redact(report))
    lines = [report["summary"]]
    for group in [k for k in report["keys"] if len(k["receipts"]) > 1][:shown]:
        lines.append(f"  {group['key']}: {len(group['receipts'])} receipts ({', '.join(group['receipts'])})"
                     + ("; amounts disagree" if group["amounts_disagree"] else ""))
    for item in report["unreadable"][:shown]:
        lines.append(f"  unreadable: {item['file']}")
    lines += [f"{fmt} report: {printable(path)}" for fmt, path in paths.items()]
    return "\n".join(lines)
