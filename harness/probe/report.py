"""The probe report's files: JSON (the source), a Markdown summary and one self-contained HTML page.

Secrets are masked once, on the report's data, before any view is rendered: the profile's secret values
wherever they appear (``Profile.secret_values``), and values under secret-named keys (``harness.redact``).
A valid signature is never in the data at all (the probes write "(valid, not shown)"); what the harness
made up — a forged signature, another secret's signature, a stale timestamp — is shown, because it is
the evidence. Answers come from the service, so every value is escaped for the page it goes to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.redact import mask_values, printable, printable_values, redact_text
from harness.report.format import md_code, md_escape
from harness.report.tables import Table
from harness.report.write import md_table, safe_stem

ROW_CLASS = {"hole": "bad", "unknown": "warn", "rejected": "ok", "accepted, no change": "ok", "consistent": "ok"}


def masked(report: dict[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The report with every secret masked: the given values anywhere, and credentials inside any text. Header
    values the probes show are made up by the harness (forged), so they are left as they are."""
    data = mask_values(json.loads(json.dumps(report, default=str)), secrets)
    return _redact_text(data)


def _redact_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_text(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


def write_probe_report(report: dict[str, Any], directory: Path, stem: str | None = None,
                       secrets: Iterable[str] = ()) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.html`` into directory; return them by format."""
    report = masked(report, secrets)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or safe_stem(f"{report['label']}-probe")
    paths = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md", "html": directory / f"{stem}.html"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(render_probe_markdown(report), encoding="utf-8")
    paths["html"].write_text(render_probe_html(report), encoding="utf-8")
    return paths


def probes_table(report: dict[str, Any]) -> Table:
    """One row per probe: what it sent, what came back, the outcome and its evidence."""
    table = Table(["Probe", "Outcome", "Sent", "Answers", "Evidence", "Note"])
    for probe in report["probes"]:
        attack = [s for s in probe["sent"] if s["phase"] == "attack"]
        forged = "; ".join(f"{h['header']}: {h['value']}" for s in attack for h in s["headers"] if h["forged"])
        sent = probe["title"] + (f" [{forged}]" if forged else "")
        answers = ", ".join(str(s["status"]) if s["status"] is not None else f"no answer ({(s['error'] or '')[:40]})"
                            for s in attack) or "—"
        evidence = "; ".join(probe["evidence"] + ([f"ended: {probe['ended']}"] if probe["ended"] else [])) or \
            ("could not be judged" if probe["outcome"] == "unknown" else "nothing changed")
        table.add([probe["name"], probe["outcome"].upper() if probe["outcome"] == "hole" else probe["outcome"], sent,
                   answers, evidence, probe["note"] or "—"], ROW_CLASS.get(probe["outcome"], ""))
    return table


def not_applicable_table(report: dict[str, Any]) -> Table:
    table = Table(["Probe", "Why it does not apply"])
    for item in report["not_applicable"]:
        table.add([item["name"], item["reason"]], "muted")
    return table


def scheme_line(report: dict[str, Any]) -> str:
    scheme = report["scheme"]
    if not scheme["signs"]:
        covered = "signs nothing: nothing protects a delivery's body"
    elif scheme["covers_body"]:
        covered = "its signature covers the body"
    else:
        covered = "its signature does NOT cover the body: the service must ask the gateway what was paid"
    time_bound = "binds a timestamp" if scheme["binds_time"] else "binds no timestamp"
    gateway = f"; gateway simulator: {scheme['gateway']}" if scheme.get("gateway") else ""
    return f"Scheme {scheme['scheme']}: {covered}; {time_bound}{gateway}"


def control_line(report: dict[str, Any]) -> str:
    """What the control payment (a valid COMPLETED the gateway confirms) did: every probe's yardstick."""
    control = report.get("control") or {}
    answers = ", ".join(str(s["status"]) if s["status"] is not None else "no answer" for s in control.get("sent", []))
    if control.get("ok"):
        return (f"Control: a valid COMPLETED for payment {control.get('payment')} was answered {answers or '—'} and "
                f"ended {control.get('ended')}: the profile's deliveries are the service's")
    return f"Control FAILED: {control.get('reason', 'not run')}"


def late_table(report: dict[str, Any]) -> Table | None:
    if not report.get("late"):
        return None
    table = Table(["Side effect that appeared after the last probe (belongs to none of them)"])
    for line in report["late"]:
        table.add([line], "bad")
    return table


def target_line(report: dict[str, Any]) -> str:
    origin = report.get("origin") or {}
    where = origin.get("path") or origin.get("name") or origin.get("from") or ""
    return f"Target {report['target']} ({where}); probed {report['created']} in {report['elapsed_s']} s"


def render_probe_markdown(report: dict[str, Any]) -> str:
    icon = "❌" if report["exit_code"] == 1 else "⚠️" if report["exit_code"] else "✅"
    lines = [f"## {icon} race-harness probe `{md_code(report['label'])}` — {md_escape(report['summary'])}", "",
             f"{md_escape(target_line(report))}  ", f"{md_escape(scheme_line(report))}  ",
             f"{md_escape(control_line(report))}  ",
             f"**Exit code:** {report['exit_code']}", "", "### Probes", "", *md_table(probes_table(report)), ""]
    if (late := late_table(report)) is not None:
        lines += ["### After the last probe", "", *md_table(late), ""]
    if report["not_applicable"]:
        lines += ["### Probes that do not apply", "", *md_table(not_applicable_table(report)), ""]
    return printable("\n".join(lines).rstrip() + "\n", newlines=True)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=PackageLoader("harness.probe", "templates"), autoescape=select_autoescape(["html", "j2"]),
                       trim_blocks=True, lstrip_blocks=True)


def render_probe_html(report: dict[str, Any]) -> str:
    """One page that loads nothing from elsewhere; every value escaped by the template."""
    banner = "bad" if report["exit_code"] == 1 else "warn" if report["exit_code"] else "ok"
    sections = [("Probes", probes_table(report))]
    if (late := late_table(report)) is not None:
        sections.append(("After the last probe", late))
    if report["not_applicable"]:
        sections.append(("Probes that do not apply", not_applicable_table(report)))
    return _environment().get_template("probe.html.j2").render(
        report=report, banner=banner, sections=sections, target_line=target_line(report),
        scheme_line=scheme_line(report), control_line=control_line(report))


def probe_stdout(report: dict[str, Any], paths: dict[str, Path] | None = None) -> str:
    """What the command prints: the summary and one line per probe, escaped for the terminal."""
    report = printable_values(report)
    lines = [report["summary"], scheme_line(report), control_line(report)]
    for probe in report["probes"]:
        answers = ",".join(str(s["status"]) if s["status"] is not None else "-" for s in probe["sent"]
                           if s["phase"] == "attack")
        detail = "; ".join(probe["evidence"][:2] + ([f"ended: {probe['ended']}"] if probe["ended"] else [])
                           + ([probe["note"]] if probe["note"] else []))
        lines.append(f"  {probe['name']:<30} {probe['outcome']:<20} [{answers}] {detail}".rstrip())
    for item in report["not_applicable"]:
        lines.append(f"  {item['name']:<30} {'not applicable':<20} {item['reason']}")
    lines += [f"  after the last probe: {line}" for line in report.get("late") or []]
    lines += [f"report ({fmt}): {printable(path)}" for fmt, path in (paths or {}).items()]
    return "\n".join(lines)
