"""Contract: what the chart renders is what the SDK reads.

The rendered ConfigMap and Secret are laid out as the kubelet would mount them in a user pod
(the volumes and mounts of ``jupyterhub.singleuser.storage``, files with the rendered modes,
paths re-rooted under a temp dir), the pod's environment is the rendered ``singleuser.extraEnv``
(paths re-rooted alike) plus HOME, the service blocks point at the local stack, and
``carbon-sdk doctor`` runs as a subprocess with only that environment: every service green.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import values_schema
import yaml
from chartlib import (
    CHART,
    Obj,
    kubelet_layout,
    load_values,
    merged_values,
    overlay,
    pod_env,
    render,
    stack_values,
)

SERVICES = ("postgres", "s3", "trino")


def _pod_env(root: Path, singleuser: Obj, mount_paths: list[str]) -> dict[str, str]:
    env = pod_env(root, singleuser.get("extraEnv"), mount_paths)
    home = root / "home" / "jovyan"
    home.mkdir(parents=True)
    env["HOME"] = str(home)
    return env


@pytest.mark.stack
@pytest.mark.slow
def test_rendered_config_and_secrets_make_doctor_green(
    carbon_services: Any, tmp_path: Path
) -> None:
    stack = carbon_services(*SERVICES)
    sdk = values_schema.sdk_schema()
    minimal = load_values(CHART / "examples" / "minimal.yaml")
    served = {name: name for name in SERVICES}
    values = overlay(minimal, stack_values(stack, sdk, served, minimal))
    objects = render(values)
    singleuser = merged_values(values)["jupyterhub"]["singleuser"]
    root = tmp_path / "pod"
    mount_paths = kubelet_layout(root, objects, singleuser)
    env = _pod_env(root, singleuser, mount_paths)
    secret_dir = root / "etc" / "carbon" / "secrets"
    assert {p.name for p in secret_dir.iterdir()} >= {"postgres__password", "s3__secret_access_key"}
    assert all(oct(p.stat().st_mode & 0o777) == "0o440" for p in secret_dir.iterdir())
    assert not yaml.safe_load((root / "etc" / "carbon" / "config.yaml").read_text())["s3"].get(
        "secret_access_key"
    )
    cli = Path(sys.executable).with_name("carbon-sdk")
    require = [arg for name in SERVICES for arg in ("--require", name)]
    proc = subprocess.run(
        [str(cli), "doctor", "--json", "--timeout", "60", *require],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {r["service"]: r for r in json.loads(proc.stdout)["results"]}
    for name in SERVICES:
        assert results[name]["status"] == "ok", results[name]
        # the settings came from the mounted files, not from the test's environment
        assert not results[name]["failed"]
