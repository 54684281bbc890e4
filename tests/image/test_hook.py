"""The before-notebook hook in a sandbox: a temporary HOME, and the files and variables the
chart injects (/etc/carbon/config.yaml, /etc/carbon/secrets/, CARBON_*), moved into tmp_path
with CARBON_CONFIG / CARBON_SECRETS_DIR as the chart sets them. Whatever happens, it exits 0
and logs; with a configuration it enables the extension and summarises the doctor."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from carbon_sdk import _startup
from tests.image._venv import ROOT

HOOK = ROOT / "image" / "before-notebook.d" / "50-carbon-sdk.py"


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    """The environment of a user server: fresh HOME, nothing of this machine's CARBON_*."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "IPYTHON"))}
    env.update(
        HOME=str(home),
        CARBON_CONFIG=str(tmp_path / "etc-carbon" / "config.yaml"),
        CARBON_SECRETS_DIR=str(tmp_path / "etc-carbon" / "secrets"),
        CARBON_USER_CONFIG=str(home / ".config" / "carbon" / "config.yaml"),
        CARBON_STARTUP_DOCTOR_TIMEOUT="2",
    )
    env.pop("NB_USER", None)
    return env


def inject(env: dict[str, str], port: int) -> None:
    """What the chart mounts: the ConfigMap's config.yaml and a Secret (keys plus the
    ..data symlink and timestamped directory a Secret volume has)."""
    config = Path(env["CARBON_CONFIG"])
    config.parent.mkdir(parents=True)
    config.write_text(f"postgres:\n  host: 127.0.0.1\n  port: {port}\n  user: alice\n")
    secrets = Path(env["CARBON_SECRETS_DIR"])
    data = secrets / "..2026_11_26_00_00_00.000"
    data.mkdir(parents=True)
    (data / "postgres__password").write_text("s3cr3t-value")
    (secrets / "..data").symlink_to(data.name)
    (secrets / "postgres__password").symlink_to("..data/postgres__password")
    env["CARBON_POSTGRES__DATABASE"] = "analytics"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_hook(env: dict[str, str], python: str = sys.executable) -> tuple[str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [python, str(HOOK)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # everything goes to the log (stderr)
    return result.stderr, elapsed


def ipython_config(env: dict[str, str]) -> Path:
    return Path(env["HOME"]) / ".ipython" / "profile_default" / "ipython_config.py"


def test_injected_config_unreachable_stack(sandbox: dict[str, str]) -> None:
    inject(sandbox, closed_port())
    log, elapsed = run_hook(sandbox)
    first, second = log.strip().splitlines()
    assert first.startswith("carbon-sdk: config ")
    assert "config.yaml found" in first and "secrets" in first and "1 files" in first
    assert "1 CARBON_<SERVICE>__<FIELD> variables" in first
    assert "IPython extension enabled, added to" in first
    assert second.startswith("carbon-sdk doctor: FAILING (unreachable: postgres")
    assert "not configured: " in second
    assert "s3cr3t-value" not in log
    assert elapsed < 2 + _startup.DOCTOR_GRACE
    assert "extensions.append('carbon_sdk')" in ipython_config(sandbox).read_text()


@pytest.mark.stack
def test_injected_config_reachable_stack(
    sandbox: dict[str, str], stack_env: object, tmp_path: Path
) -> None:
    env = stack_env("postgres")  # type: ignore[operator]
    sandbox.update({k: v for k, v in env.items() if k.startswith("CARBON_")})
    Path(sandbox["CARBON_CONFIG"]).parent.mkdir(parents=True)
    Path(sandbox["CARBON_CONFIG"]).write_text("{}\n")
    log, _ = run_hook(sandbox)
    first, second = log.strip().splitlines()
    assert first.startswith("carbon-sdk: config ") and "found" in first
    assert second.startswith("carbon-sdk doctor: all configured services ok (ok: postgres ")


def test_nothing_injected_warns_and_starts(sandbox: dict[str, str]) -> None:
    log, _ = run_hook(sandbox)
    first, second = log.strip().splitlines()
    assert first.startswith("WARNING: carbon-sdk: no configuration injected: config ")
    assert "missing" in first
    assert second == (
        "carbon-sdk doctor: all configured services ok (not configured: "
        + ", ".join(_registry_names())
        + "); details: carbon-sdk doctor"
    )


def _registry_names() -> list[str]:
    from carbon_sdk._registry import CONNECTORS

    return list(CONNECTORS)


def test_idempotent_keeps_the_users_config_and_can_be_turned_off(
    sandbox: dict[str, str],
) -> None:
    config = ipython_config(sandbox)
    config.parent.mkdir(parents=True)
    mine = "c.InteractiveShell.autocall = 1\nc.InteractiveShellApp.extensions = ['autoreload']\n"
    config.write_text(mine)
    sandbox["CARBON_STARTUP_DOCTOR"] = "0"
    run_hook(sandbox)
    once = config.read_text()
    log, _ = run_hook(sandbox)
    assert config.read_text() == once and once.startswith(mine)
    assert once.count("extensions.append('carbon_sdk')") == 1
    assert "IPython extension enabled (" in log
    assert "carbon-sdk doctor: skipped (CARBON_STARTUP_DOCTOR=0)" in log
    sandbox["CARBON_IPYTHON_EXTENSION"] = "0"
    log, _ = run_hook(sandbox)
    assert "removed from" in log
    assert config.read_text() == mine + "\n"


def test_an_older_block_is_replaced_by_the_current_one(sandbox: dict[str, str]) -> None:
    config = ipython_config(sandbox)
    config.parent.mkdir(parents=True)
    old = _startup.BLOCK.replace("'carbon_sdk'", "'carbon_sdk.ipython'")
    config.write_text("c.A = 1\n\n" + old + "c.B = 2\n")
    sandbox["CARBON_STARTUP_DOCTOR"] = "0"
    log, _ = run_hook(sandbox)
    assert "updated in" in log
    assert config.read_text() == "c.A = 1\n\n" + _startup.BLOCK + "c.B = 2\n"


def test_profile_loads_the_extension_in_ipython_and_in_a_kernel(
    sandbox: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox["CARBON_STARTUP_DOCTOR"] = "0"
    run_hook(sandbox)
    ipython = Path(sys.executable).parent / "ipython"
    script = Path(sandbox["HOME"]) / "probe.ipy"
    script.write_text(
        "print('carbon_sdk' in get_ipython().extension_manager.loaded)\n"
        "report = get_ipython().run_line_magic('carbon_doctor', '--timeout 1')\n"
        "print(type(report).__name__, report.ok)\n"
    )
    out = subprocess.run(
        [str(ipython), "--colors=nocolor", str(script)],
        capture_output=True, text=True, env=sandbox, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert out.split() == ["True", "DoctorReport", "True"]
    for key, value in sandbox.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("'carbon_sdk' in get_ipython().extension_manager.loaded"),
            nbformat.v4.new_code_cell("%carbon_doctor --timeout 1"),
        ]
    )
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    loaded, doctor = (cell.outputs[0]["data"] for cell in notebook.cells)
    assert loaded["text/plain"] == "True"
    assert "text/html" in doctor  # the report renders as the doctor's table


def test_a_broken_sdk_does_not_fail_startup(sandbox: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "carbon_sdk"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('half-installed')\n")
    sandbox["PYTHONPATH"] = str(broken.parent)
    log, _ = run_hook(sandbox)
    assert log.strip() == "WARNING: carbon-sdk: startup hook skipped (RuntimeError: half-installed)"


def test_a_hanging_doctor_is_killed_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_startup, "DOCTOR_GRACE", 1.0)
    started = time.monotonic()
    line = _startup.doctor_summary(
        0.5, command=[sys.executable, "-c", "import time; time.sleep(60)"]
    )
    assert time.monotonic() - started < 5
    assert line.startswith("no answer within 1.5 s")


def test_doctor_output_that_is_not_json_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _startup.doctor_summary(
        1, command=[sys.executable, "-c", "import sys; sys.exit('error: bad CARBON_TRINO__PORT')"]
    )
    assert line == "could not run (exit 1): error: bad CARBON_TRINO__PORT"


def test_as_root_the_profile_goes_to_nb_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker Stacks runs the hooks as root when the container starts as root: the profile is
    written into NB_USER's home and given to NB_UID:NB_GID."""
    home = tmp_path / "jovyan"
    home.mkdir()
    entry = type("Entry", (), {"pw_dir": str(home), "pw_uid": 1000, "pw_gid": 100})()
    chowned: list[tuple[Path, int, int]] = []
    monkeypatch.setattr(_startup.os, "geteuid", lambda: 0)
    monkeypatch.setattr(_startup.pwd, "getpwnam", lambda name: entry)
    monkeypatch.setattr(_startup.os, "chown", lambda p, u, g: chowned.append((Path(p), u, g)))
    monkeypatch.setenv("NB_USER", "jovyan")
    monkeypatch.setenv("NB_UID", "1001")
    monkeypatch.delenv("NB_GID", raising=False)
    monkeypatch.delenv("IPYTHONDIR", raising=False)
    owner = _startup.Owner.detect()
    assert (owner.home, owner.uid, owner.gid) == (home, 1001, 100)
    _startup.enable_extension(owner)
    config = home / ".ipython" / "profile_default" / "ipython_config.py"
    assert "extensions.append('carbon_sdk')" in config.read_text()
    assert [p for p, _, _ in chowned] == [home / ".ipython", config.parent, config]
    assert {(u, g) for _, u, g in chowned} == {(1001, 100)}
