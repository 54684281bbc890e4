"""The carbon-sdk IPython extension: ``%load_ext carbon_sdk``.

The notebook image loads it in every kernel (its startup hook adds it to the IPython profile).
Loading is cheap: it registers magics and imports nothing else (no pydantic, no client
library) until a magic runs.

``%carbon doctor [SERVICE ...] [--timeout SECONDS]``
    checks the services and shows the doctor's table (as :func:`carbon_sdk.doctor`);
    ``%carbon_doctor`` is the same.
``%carbon config [SERVICE]``
    every setting, its value (secrets as ``***``) and where it came from.
``%%trino [-o NAME] [--as pandas|arrow|polars]`` and ``%%postgres ...``
    run the cell's SQL and show the result (a header line: rows, time, query id and link, then
    the table); ``-o NAME`` also binds it to ``NAME``. ``:name`` in the SQL is a parameter
    bound by the server to the notebook variable ``name`` (see docs/sql-parameters.md).
    In ``%%trino`` cells, Tab completes catalog, schema and table names (``tpch.tiny.<TAB>``).
"""

from __future__ import annotations

import importlib
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbon_sdk.health import DoctorReport

LINE_MAGICS = ("carbon", "carbon_doctor")
CELL_MAGICS = ("trino", "postgres")
CARBON_USAGE = "%carbon doctor [SERVICE ...] [--timeout SECONDS] | %carbon config [SERVICE]"


def _usage_error(message: str) -> Exception:
    from carbon_sdk.errors import ConfigurationError

    return ConfigurationError(message)


def parse_doctor_args(line: str) -> tuple[tuple[str, ...], float]:
    """The services and timeout of a ``%carbon doctor`` line (``--timeout N`` or ``=N``)."""
    from carbon_sdk.health import DEFAULT_TIMEOUT

    services: list[str] = []
    timeout = DEFAULT_TIMEOUT
    words = iter(shlex.split(line))
    for word in words:
        if word == "--timeout" or word.startswith("--timeout="):
            value = word.partition("=")[2] if "=" in word else next(words, "")
            try:
                timeout = float(value)
            except ValueError:
                raise _usage_error(f"--timeout needs seconds, got {value!r}") from None
            if not timeout > 0:
                raise _usage_error(f"--timeout must be > 0, got {value}")
        elif word.startswith("-"):
            raise _usage_error(
                f"unknown option {word!r}: %carbon doctor [SERVICE ...] [--timeout SECONDS]"
            )
        else:
            services.append(word)
    return tuple(services), timeout


def carbon_doctor(line: str = "") -> DoctorReport:
    """``%carbon_doctor [SERVICE ...] [--timeout SECONDS]``: the doctor's report, as a table."""
    from carbon_sdk import doctor

    services, timeout = parse_doctor_args(line)
    return doctor(*services, timeout=timeout)


def carbon_config(line: str = "") -> Any:
    """``%carbon config [SERVICE]``: the settings (secrets as ``***``) and their sources."""
    from carbon_sdk._registry import connector
    from carbon_sdk.settings.carbon import get_settings

    words = shlex.split(line)
    if len(words) > 1 or any(w.startswith("-") for w in words):
        raise _usage_error(f"%carbon config takes at most one service, got {line!r}")
    settings = get_settings()
    return settings.service(connector(words[0]).name) if words else settings


def carbon(line: str = "") -> Any:
    """``%carbon doctor ...`` or ``%carbon config ...`` (see the module's docstring)."""
    command, _, rest = line.strip().partition(" ")
    if command == "doctor":
        return carbon_doctor(rest)
    if command == "config":
        return carbon_config(rest)
    raise _usage_error(f"unknown %carbon command {command!r}: {CARBON_USAGE}")


@dataclass(frozen=True)
class SqlArgs:
    """The options of a ``%%trino``/``%%postgres`` line."""

    out: str | None = None
    as_: str = "pandas"


def parse_sql_args(line: str, magic: str) -> SqlArgs:
    """``-o NAME`` (``--out``) and ``--as pandas|arrow|polars`` of a SQL cell magic's line."""
    from carbon_sdk._tables import FORMATS

    usage = f"%%{magic} [-o NAME] [--as {'|'.join(FORMATS)}]"
    out, as_ = None, "pandas"
    words = iter(shlex.split(line))
    for word in words:
        option, _, value = word.partition("=")
        if option in ("-o", "--out", "--as"):
            value = value or next(words, "")
            if option == "--as":
                if value not in FORMATS:
                    raise _usage_error(f"--as {value!r} is not a table format: {usage}")
                as_ = value
            elif not value.isidentifier():
                raise _usage_error(f"{option} needs a Python variable name, got {value!r}")
            else:
                out = value
        else:
            raise _usage_error(f"unexpected {word!r}: {usage}")
    return SqlArgs(out, as_)


def run_sql(magic: str, line: str, cell: str, namespace: dict[str, Any]) -> Any:
    """Run ``cell`` with the connector ``magic`` (trino or postgres), its ``:name`` parameters
    bound to the values of ``namespace``; show the report line; return the result."""
    from carbon_sdk._params import names
    from carbon_sdk._results import capture

    args = parse_sql_args(line, magic)
    cell = cell.strip().removesuffix(";")  # Trino rejects the semicolon SQL cells often end with
    wanted = names(cell, magic)  # type: ignore[arg-type]
    missing = [n for n in wanted if n not in namespace]
    if missing:
        raise _usage_error(
            f"{', '.join(':' + n for n in missing)} in the SQL: no such notebook variable "
            "(assign it in a cell above; a cast is written ::type)"
        )
    params = {n: namespace[n] for n in wanted} if wanted else None
    connector = importlib.import_module(f"carbon_sdk.{magic}")
    with capture() as reports:
        result = connector.query(cell, params, as_=args.as_)
    if args.out:
        namespace[args.out] = result
    if reports:
        from IPython.display import display

        display(reports[-1])  # type: ignore[no-untyped-call]
    return result


def _cell_magic(shell: Any, magic: str) -> Any:
    def run(line: str, cell: str) -> Any:
        return run_sql(magic, line, cell, shell.user_ns)

    run.__name__ = magic
    run.__doc__ = f"%%{magic} [-o NAME] [--as pandas|arrow|polars]: run the cell's SQL."
    return run


def load_ipython_extension(ipython: Any) -> None:
    """Register the carbon-sdk magics (IPython calls this on ``%load_ext``)."""
    ipython.register_magic_function(carbon, magic_kind="line", magic_name="carbon")
    ipython.register_magic_function(carbon_doctor, magic_kind="line", magic_name="carbon_doctor")
    for magic in CELL_MAGICS:
        ipython.register_magic_function(
            _cell_magic(ipython, magic), magic_kind="cell", magic_name=magic
        )
    from carbon_sdk._complete import trino_matcher

    matchers = ipython.Completer.custom_matchers
    if trino_matcher not in matchers:
        matchers.append(trino_matcher)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the carbon-sdk magics."""
    magics = ipython.magics_manager.magics
    for name in LINE_MAGICS:
        magics["line"].pop(name, None)
    for name in CELL_MAGICS:
        magics["cell"].pop(name, None)
    from carbon_sdk._complete import trino_matcher

    if trino_matcher in ipython.Completer.custom_matchers:
        ipython.Completer.custom_matchers.remove(trino_matcher)
