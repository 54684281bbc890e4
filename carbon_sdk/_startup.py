"""What the notebook image does right before the user's server starts (Docker Stacks runs
``/usr/local/bin/before-notebook.d/50-carbon-sdk.py``, which calls :func:`main`).

1. Enable the carbon-sdk IPython extension for every kernel: a marked block in the IPython
   profile's ``ipython_config.py`` (kernels and terminal IPython read it), added once.
2. Check that the configuration the chart injects is there (config file, secrets directory,
   ``CARBON_*`` variables) and log one line about it.
3. Run ``carbon-sdk doctor --json`` with a short timeout and log a one-line summary.

It never blocks startup for long (the doctor is killed after a hard deadline) and never fails
it: every step is guarded and :func:`main` returns 0. Lines go to stderr, the container log.

Environment (all optional):
    CARBON_IPYTHON_EXTENSION=0          do not enable the extension (and remove the block)
    CARBON_STARTUP_DOCTOR=0             skip the doctor
    CARBON_STARTUP_DOCTOR_TIMEOUT=3     seconds each check may take (the whole run gets 8 more)
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXTENSION = "carbon_sdk"
BEGIN = "# >>> carbon-sdk >>>"
END = "# <<< carbon-sdk <<<"
BLOCK = f"""{BEGIN}
# Added by the carbon-sdk notebook image at every start (CARBON_IPYTHON_EXTENSION=0 removes it):
# loads the carbon-sdk extension (%%trino, %%postgres, %carbon doctor) in every kernel.
c.InteractiveShellApp.extensions.append({EXTENSION!r})
{END}
"""
DEFAULT_DOCTOR_TIMEOUT = 3.0
DOCTOR_GRACE = 8.0  # interpreter start and imports, on top of the checks' own timeout
OFF = frozenset({"0", "false", "no", "off"})


def log(message: str) -> None:
    """One line to the container log (stderr, like Docker Stacks' own hook messages)."""
    print(message, file=sys.stderr, flush=True)


def _off(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in OFF


@dataclass(frozen=True)
class Owner:
    """Whose IPython profile to write: the notebook user's, also when the hook runs as root."""

    home: Path
    uid: int | None = None  # chown to these when running as root for another user
    gid: int | None = None

    @classmethod
    def detect(cls) -> Owner:
        """Docker Stacks runs before-notebook hooks as root when the container starts as root
        (then ``NB_USER`` is who the server will run as); otherwise as the user itself."""
        user = os.environ.get("NB_USER")
        if os.geteuid() == 0 and user and user != "root":
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                return cls(Path.home())
            uid = int(os.environ.get("NB_UID") or entry.pw_uid)
            gid = int(os.environ.get("NB_GID") or entry.pw_gid)
            return cls(Path(entry.pw_dir), uid, gid)
        return cls(Path.home())

    def ipython_dir(self) -> Path:
        """``$IPYTHONDIR``, else ``~/.ipython`` (as IPython itself resolves it)."""
        explicit = os.environ.get("IPYTHONDIR")
        return Path(explicit).expanduser() if explicit else self.home / ".ipython"

    def chown(self, path: Path) -> None:
        """Give ``path`` to the notebook user when we are root writing on their behalf."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def enable_extension(owner: Owner) -> str:
    """Add (or, with CARBON_IPYTHON_EXTENSION=0, remove) the block; a few words on what was
    done. Idempotent: a profile that has the block is left as it is (an older block, e.g.
    one loading ``carbon_sdk.ipython``, is replaced by the current one)."""
    profile = owner.ipython_dir() / "profile_default"
    config = profile / "ipython_config.py"
    text = config.read_text() if config.exists() else ""
    has_block = BEGIN in text
    if _off("CARBON_IPYTHON_EXTENSION"):
        if not has_block:
            return "IPython extension off (CARBON_IPYTHON_EXTENSION=0)"
        head, _, rest = text.partition(BEGIN)
        tail = rest.partition(END)[2].removeprefix("\n")
        config.write_text(head + tail)
        return f"IPython extension off, removed from {config}"
    if has_block:
        head, _, rest = text.partition(BEGIN)
        current = BEGIN + rest.partition(END)[0] + END + "\n"
        if current == BLOCK:
            return f"IPython extension enabled ({config})"
        config.write_text(head + BLOCK + rest.partition(END)[2].removeprefix("\n"))
        return f"IPython extension enabled, updated in {config}"
    created = [p for p in (owner.ipython_dir(), profile) if not p.exists()]
    profile.mkdir(parents=True, exist_ok=True)
    separator = "\n" if text and not text.endswith("\n") else ""
    separator += "\n" if text and not text.endswith("\n\n") else ""
    config.write_text(text + separator + BLOCK)
    for path in [*created, config]:
        owner.chown(path)
    return f"IPython extension enabled, added to {config}"


def injected_configuration() -> tuple[bool, str]:
    """Whether the chart's configuration is there, and one line saying what was found."""
    from carbon_sdk.settings.locations import (
        CONFIG_ENV,
        PROFILE_ENV,
        SECRETS_DIR_ENV,
        USER_CONFIG_ENV,
        Locations,
    )

    locations = Locations.from_environment()
    moved = {CONFIG_ENV, SECRETS_DIR_ENV, PROFILE_ENV, USER_CONFIG_ENV}
    variables = sorted(n for n in os.environ if n.startswith("CARBON_") and "__" in n)
    config_found = locations.system_config.is_file()
    secrets = locations.secrets_dir
    # A mounted Secret also holds `..data` and timestamped directories: count the keys only.
    keys = [p for p in secrets.iterdir() if not p.name.startswith(".")] if secrets.is_dir() else []
    parts = [
        f"config {locations.system_config} {'found' if config_found else 'missing'}",
        f"secrets {secrets} " + (f"{len(keys)} files" if secrets.is_dir() else "missing"),
        f"{len(variables)} CARBON_<SERVICE>__<FIELD> variables",
    ]
    if locations.profile:
        parts.append(f"profile {locations.profile}")
    elif any(n in os.environ for n in moved - {PROFILE_ENV}):
        parts.append("locations moved by CARBON_CONFIG/CARBON_SECRETS_DIR/CARBON_USER_CONFIG")
    found = config_found or bool(keys) or bool(variables)
    return found, ", ".join(parts)


def _summary(document: dict[str, Any]) -> str:
    groups: dict[str, list[str]] = {}
    for result in document.get("results", []):
        name = str(result.get("service"))
        if result.get("status") == "ok" and result.get("latency_ms") is not None:
            name += f" {result['latency_ms']:.0f} ms"
        groups.setdefault(str(result.get("status")), []).append(name)
    order = ["ok", "unreachable", "auth failed", "misconfigured", "error", "not configured"]
    text = "; ".join(
        f"{status}: {', '.join(groups[status])}"
        for status in sorted(groups, key=lambda s: order.index(s) if s in order else len(order))
    )
    verdict = "all configured services ok" if document.get("ok") else "FAILING"
    return f"{verdict} ({text or 'no services'}); details: carbon-sdk doctor"


def doctor_summary(timeout: float, command: list[str] | None = None) -> str:
    """Run ``carbon-sdk doctor --json`` (or ``command``) in its own process group, killed at
    the deadline (``timeout`` plus :data:`DOCTOR_GRACE`)."""
    command = command or [
        *(sys.executable, "-m", "carbon_sdk", "doctor", "--json", "--timeout", f"{timeout:g}")
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its check processes too: one killpg ends them all
    )
    deadline = timeout + DOCTOR_GRACE
    try:
        out, err = process.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return f"no answer within {deadline:g} s (skipped; run carbon-sdk doctor in a terminal)"
    try:
        document = json.loads(out)
    except ValueError:
        reason = (err.strip().splitlines() or ["no output"])[-1]
        return f"could not run (exit {process.returncode}): {reason[:300]}"
    return _summary(document)


def _guarded(step: str, action: Callable[[], str]) -> str:
    try:
        return action()
    except Exception as exc:
        return f"{step} skipped ({type(exc).__name__}: {exc})"


def main() -> int:
    """Run the three steps; always 0 (a notebook server must start even if this fails)."""
    try:
        owner = Owner.detect()
        extension = _guarded("IPython extension", lambda: enable_extension(owner))
        try:
            found, injected = injected_configuration()
        except Exception as exc:
            found, injected = False, f"configuration check failed ({type(exc).__name__}: {exc})"
        prefix = "carbon-sdk:" if found else "WARNING: carbon-sdk: no configuration injected:"
        log(f"{prefix} {injected}; {extension}")
        if _off("CARBON_STARTUP_DOCTOR"):
            log("carbon-sdk doctor: skipped (CARBON_STARTUP_DOCTOR=0)")
            return 0
        try:
            timeout = float(os.environ.get("CARBON_STARTUP_DOCTOR_TIMEOUT") or 0)
        except ValueError:
            timeout = 0
        if not 0 < timeout <= 60:  # a startup hook must stay short
            timeout = DEFAULT_DOCTOR_TIMEOUT
        log("carbon-sdk doctor: " + _guarded("doctor", lambda: doctor_summary(timeout)))
    except BaseException as exc:  # even KeyboardInterrupt/SystemExit: startup goes on
        log(f"WARNING: carbon-sdk: startup hook failed ({type(exc).__name__}: {exc})")
    return 0
