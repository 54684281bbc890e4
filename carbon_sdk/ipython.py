"""The carbon-sdk IPython extension: ``%load_ext carbon_sdk.ipython``.

The notebook image loads it in every kernel (its startup hook adds it to the IPython profile).
Loading is cheap: it registers magics and imports nothing else (no pydantic, no client
library) until a magic runs.

``%carbon_doctor [SERVICE ...] [--timeout SECONDS]``
    checks the services and shows the doctor's table (as :func:`carbon_sdk.doctor`).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbon_sdk.health import DoctorReport

MAGICS = ("carbon_doctor",)


def parse_doctor_args(line: str) -> tuple[tuple[str, ...], float]:
    """The services and timeout of a ``%carbon_doctor`` line (``--timeout N`` or ``=N``)."""
    from carbon_sdk.errors import ConfigurationError
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
                raise ConfigurationError(f"--timeout needs seconds, got {value!r}") from None
            if not timeout > 0:
                raise ConfigurationError(f"--timeout must be > 0, got {value}")
        elif word.startswith("-"):
            raise ConfigurationError(
                f"unknown option {word!r}: %carbon_doctor [SERVICE ...] [--timeout SECONDS]"
            )
        else:
            services.append(word)
    return tuple(services), timeout


def carbon_doctor(line: str = "") -> DoctorReport:
    """``%carbon_doctor [SERVICE ...] [--timeout SECONDS]``: the doctor's report, as a table."""
    from carbon_sdk import doctor

    services, timeout = parse_doctor_args(line)
    return doctor(*services, timeout=timeout)


def load_ipython_extension(ipython: Any) -> None:
    """Register the carbon-sdk magics (IPython calls this on ``%load_ext``)."""
    ipython.register_magic_function(carbon_doctor, magic_kind="line", magic_name="carbon_doctor")


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the carbon-sdk magics."""
    line_magics = ipython.magics_manager.magics["line"]
    for name in MAGICS:
        line_magics.pop(name, None)
