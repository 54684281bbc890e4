"""``carbon-sdk dev``: run the local platform stack (mounted by :mod:`carbon_sdk.cli`)."""

from __future__ import annotations

import shlex
import sys
from typing import Annotated

import typer

from .progress import for_terminal
from .service import DevStackError
from .supervisor import Stack, State

app = typer.Typer(
    name="dev",
    help="Run the platform's services (PostgreSQL, S3, ...) as local processes.",
    no_args_is_help=True,
)


def _fail(exc: DevStackError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command()
def up(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to start (default: all).")
    ] = None,
) -> None:
    """Start the stack (idempotent) and write its config profile (`dev profile` names it)."""
    stack = Stack()
    try:
        with for_terminal() as progress:
            started = stack.up(services or (), progress=progress)
    except DevStackError as exc:
        raise _fail(exc) from exc
    fresh = sum(not s.already_running for s in started)
    typer.echo(
        f"{len(started)} service(s) up ({fresh} started, {len(started) - fresh} already running)."
        f' Use CARBON_PROFILE={stack.profile} or `eval "$(carbon-sdk dev env)"`.',
        err=True,
    )


@app.command()
def down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete data, logs and state.")
    ] = False,
) -> None:
    """Stop every service this stack started (idempotent) and remove its config profile."""
    try:
        with for_terminal() as progress:
            stopped = Stack().down(purge=purge, progress=progress)
    except DevStackError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{len(stopped)} service(s) stopped.", err=True)


@app.command()
def status() -> None:
    """Show each service's state, pid, port, uptime and log file."""
    from rich.console import Console
    from rich.table import Table

    stack = Stack()
    rows = stack.status()
    if not rows:
        typer.echo(f"No services recorded under {stack.home}; run `carbon-sdk dev up`.")
        return
    table = Table("service", "state", "pid", "port", "uptime", "log")
    colors = {State.RUNNING: "green", State.FAILED: "red", State.STOPPED: "dim"}
    for row in rows:
        table.add_row(
            row.name,
            f"[{colors[row.state]}]{row.state.value}",
            str(row.pid or "-"),
            str(row.port or "-"),
            _duration(row.uptime) if row.uptime is not None else "-",
            str(row.log_path),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    if stack.profile:
        typer.echo(f"profile: CARBON_PROFILE={stack.profile}")
    if any(row.state is State.FAILED for row in rows):
        raise typer.Exit(1)


@app.command()
def env() -> None:
    """Print the CARBON_* settings of the running stack as shell exports."""
    for key, value in Stack().env().items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@app.command()
def profile() -> None:
    """Print the name of this stack's config profile (`dev` for the standard CARBON_DEV_HOME),
    e.g. `export CARBON_PROFILE=$(carbon-sdk dev profile)`."""
    typer.echo(Stack().profile)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="The service whose log to print.")],
    lines: Annotated[int, typer.Option("--lines", "-n", help="Only the last N lines.")] = 0,
) -> None:
    """Print a service's log file."""
    path = Stack().log_path(service)
    if not path.is_file():
        typer.echo(f"error: no log for {service!r} at {path}", err=True)
        raise typer.Exit(1)
    text = path.read_text(errors="replace")
    if lines:
        text = "\n".join(text.splitlines()[-lines:]) + "\n"
    sys.stdout.write(text)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
