"""Tables for terminals (rich) and notebooks (HTML): settings and doctor reports."""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import TYPE_CHECKING, Any

from carbon_sdk.errors import ConfigurationError

if TYPE_CHECKING:
    from rich.table import Table

    from carbon_sdk.health import DoctorReport
    from carbon_sdk.settings import ServiceSettings
    from carbon_sdk.settings.carbon import CarbonSettings

STATUS_STYLE = {"ok": "green", "not configured": "dim"}
SETTINGS_COLUMNS = ("service", "setting", "value", "source")
DOCTOR_COLUMNS = ("service", "status", "latency", "detail", "fix")


def settings_rows(
    settings: CarbonSettings, services: list[str] | None = None
) -> Iterator[dict[str, str]]:
    """One row per setting (secrets as ``***``); a section that fails to load: one error row."""
    for name in services or list(settings):
        try:
            rows = list(settings.service(name).rows())
        except ConfigurationError as exc:
            yield {"service": name, "setting": "", "value": "", "source": f"error: {exc}"}
            continue
        for field, value, source in rows:
            yield {"service": name, "setting": field, "value": value, "source": source}


def _html_table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th style='text-align:left'>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{escape(v)}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def settings_html(settings: CarbonSettings) -> str:
    """The ``config show`` table as HTML, for a notebook."""
    rows = [[r[c] for c in SETTINGS_COLUMNS] for r in settings_rows(settings)]
    caption = f"<p>profile: {escape(settings.profile or 'none')}</p>"
    return caption + _html_table(SETTINGS_COLUMNS, rows)


def service_settings_html(settings: ServiceSettings) -> str:
    """One service's settings as HTML (``%carbon config SERVICE``), secrets as ``***``."""
    rows = [[field, value, source] for field, value, source in settings.rows()]
    caption = f"<p>{escape(settings.service)} at {escape(str(settings.endpoint))}</p>"
    return caption + _html_table(SETTINGS_COLUMNS[1:], rows)


def settings_table(settings: CarbonSettings, rows: list[dict[str, str]]) -> Table:
    """The ``config show`` table for a terminal (values are text, never rich markup)."""
    from rich.markup import escape as text
    from rich.table import Table

    profile = text(settings.profile or "none")
    table = Table(*SETTINGS_COLUMNS, title=f"carbon-sdk settings (profile: {profile})")
    for row in rows:
        table.add_row(*(text(row[c]) for c in SETTINGS_COLUMNS))
    return table


def schema_table(document: dict[str, Any]) -> Table:
    """``config schema`` for a terminal: one row per setting."""
    from rich.markup import escape as text
    from rich.table import Table

    columns = ("setting", "type", "default", "env var", "secret file")
    table = Table(*columns, title="carbon-sdk settings schema")
    for service, entry in document["services"].items():
        for spec in entry["fields"]:
            name = f"{service}.{spec['name']}" + (" (secret)" if spec["secret"] else "")
            default = "" if spec["default"] is None else str(spec["default"])
            env = ", ".join([spec["env_var"], *spec["aliases"]])
            cells = (name, spec["type"], default, env, spec["secret_file"])
            table.add_row(*(text(c) for c in cells))
    return table


def _doctor_rows(report: DoctorReport) -> list[list[str]]:
    return [
        [
            r.service,
            r.status.value,
            f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "",
            r.detail,
            r.hint or "",
        ]
        for r in report.results
    ]


def doctor_html(report: DoctorReport) -> str:
    """The doctor table as HTML, for a notebook."""
    verdict = "all configured services ok" if report.ok else "some services need attention"
    return f"<p>carbon-sdk doctor: {verdict}</p>" + _html_table(
        DOCTOR_COLUMNS, _doctor_rows(report)
    )


def doctor_table(report: DoctorReport) -> Table:
    """The doctor table for a terminal, statuses coloured."""
    from rich.markup import escape as text
    from rich.table import Table

    table = Table(*DOCTOR_COLUMNS, title="carbon-sdk doctor")
    for result, row in zip(report.results, _doctor_rows(report), strict=True):
        style = STATUS_STYLE.get(result.status.value, "red" if report.failed(result) else "yellow")
        cells = [text(cell) for cell in row]
        cells[1] = f"[{style}]{cells[1]}[/{style}]"
        table.add_row(*cells)
    return table
