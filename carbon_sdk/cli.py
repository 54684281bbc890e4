"""The ``carbon-sdk`` command: doctor, config show, dev (the local stack)."""

from __future__ import annotations

import json
import math
from typing import Annotated

import typer

from carbon_sdk import __version__

app = typer.Typer(
    name="carbon-sdk",
    help="Zero-configuration access to the Carbon data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"carbon-sdk {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """carbon-sdk: the platform's services from the first notebook cell."""


def _positive(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a positive number of seconds")
    return value


@app.command()
def doctor(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to check (default: all).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stable JSON document.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds each check may take (> 0).", callback=_positive)
    ] = 5.0,
    require: Annotated[
        list[str] | None, typer.Option(help="Fail if this service is not configured (repeatable).")
    ] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also write checks (e.g. MLflow's artifact store).")
    ] = False,
) -> None:
    """Check connectivity to every configured service, concurrently."""
    from rich.console import Console

    from carbon_sdk.errors import ConfigurationError
    from carbon_sdk.health import run

    try:
        report = run(services or (), timeout=timeout, require=require or (), deep=deep)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from None
    if as_json:
        typer.echo(report.to_json())
    else:
        Console().print(report)
    raise typer.Exit(report.exit_code)


@config_app.command("show")
def config_show(
    service: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List every setting, its effective value (secrets as ***) and where it came from."""
    from rich.console import Console

    from carbon_sdk._registry import connector
    from carbon_sdk._render import settings_rows, settings_table
    from carbon_sdk.errors import ConfigurationError
    from carbon_sdk.settings.carbon import get_settings

    try:
        if service:
            connector(service)
        settings = get_settings()
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    services = [service] if service else None
    rows = list(settings_rows(settings, services))
    if as_json:
        typer.echo(json.dumps({"profile": settings.profile, "settings": rows}, indent=2))
    else:
        Console().print(settings_table(settings, rows))
    if any(row["source"].startswith("error:") for row in rows):
        raise typer.Exit(1)


@config_app.command("schema")
def config_schema(
    service: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON document.")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the docs' settings reference.")
    ] = False,
) -> None:
    """Every setting: type, default, whether secret, env var, aliases, secret file, config key."""
    from rich.console import Console

    from carbon_sdk._render import schema_table
    from carbon_sdk.errors import ConfigurationError
    from carbon_sdk.settings.schema import markdown, schema

    try:
        services = [connector_name(service)] if service else None
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(schema(services), indent=2))
    elif as_markdown:
        typer.echo(markdown(services), nl=False)
    else:
        Console().print(schema_table(schema(services)))


def connector_name(name: str) -> str:
    """``name`` if it is a registered connector, else a ConfigurationError with suggestions."""
    from carbon_sdk._registry import connector

    return connector(name).name


def _mount_dev() -> None:
    from carbon_sdk.dev.cli import app as dev_app

    app.add_typer(dev_app, name="dev", help="Run the platform's services locally.")


def main() -> None:
    """Entry point of the ``carbon-sdk`` script."""
    _mount_dev()
    app()
