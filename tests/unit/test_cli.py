"""The carbon-sdk command, run as a user runs it (a subprocess of the installed script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import carbon_sdk

CANARY = "canary-7f3a"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbon_sdk", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_version() -> None:
    out = cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"carbon-sdk {carbon_sdk.__version__}"


def test_config_show_json_redacts_and_names_the_source() -> None:
    out = cli("config", "show", "--json", env={"CARBON_POSTGRES__PASSWORD": CANARY})
    assert out.returncode == 0, out.stderr
    assert CANARY not in out.stdout + out.stderr
    rows = json.loads(out.stdout)["settings"]
    (password,) = [r for r in rows if (r["service"], r["setting"]) == ("postgres", "password")]
    assert password == {
        "service": "postgres",
        "setting": "password",
        "value": "***",
        "source": "env CARBON_POSTGRES__PASSWORD",
    }


def test_config_show_one_service_table() -> None:
    out = cli("config", "show", "s3", env={"AWS_REGION": "eu-west-3"})
    assert out.returncode == 0, out.stderr
    assert "eu-west-3" in out.stdout
    assert "env AWS_REGION" in out.stdout
    assert "postgres" not in out.stdout


def test_config_show_unknown_service() -> None:
    out = cli("config", "show", "kafkaa")
    assert out.returncode == 2
    assert "unknown service 'kafkaa'" in out.stderr


def test_config_show_reports_a_broken_profile(isolated_config: Path) -> None:
    out = cli("config", "show", env={"CARBON_PROFILE": "nope"})
    assert out.returncode == 2
    assert "CARBON_PROFILE='nope'" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("as_json", [True, False])
def test_doctor_exit_codes_and_redaction(as_json: bool) -> None:
    env = {
        "CARBON_POSTGRES__HOST": "127.0.0.1",
        "CARBON_POSTGRES__PORT": "1",
        "CARBON_POSTGRES__USER": "u",
        "CARBON_POSTGRES__PASSWORD": CANARY,
    }
    args = ["doctor", "--timeout", "2", *(["--json"] if as_json else [])]
    out = cli(*args, env=env)
    assert out.returncode == 1
    assert CANARY not in out.stdout + out.stderr
    assert "unreachable" in out.stdout
    clean = cli("doctor", "--json")
    assert clean.returncode == 0
    assert {r["status"] for r in json.loads(clean.stdout)["results"]} == {"not configured"}
    required = cli("doctor", "s3", "--require", "s3")
    assert required.returncode == 1
    assert "not configured" in required.stdout
