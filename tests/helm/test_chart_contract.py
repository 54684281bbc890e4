"""Contract: what the chart renders is what the SDK reads.

The rendered ConfigMap and Secret are laid out as the kubelet would mount them in a user pod
(the volumes and mounts of ``jupyterhub.singleuser.storage``, files with the rendered modes,
paths re-rooted under a temp dir), the pod's environment is the rendered ``singleuser.extraEnv``
(paths re-rooted alike) plus HOME, the service blocks point at the local stack, and
``carbon-sdk doctor`` runs as a subprocess with only that environment: every service green.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import values_schema
import yaml
from chartlib import CHART, Obj, load_values, merged_values, one, render

SERVICES = ("postgres", "s3", "trino")


def _stack_values(stack: Any, sdk: dict[str, Any]) -> Obj:
    """Overrides that point every service block at the stack (secrets inline, dev style)."""
    defaults = merged_values(load_values(CHART / "examples" / "minimal.yaml"))["services"]
    services: Obj = {}
    inline: Obj = {}
    for name in SERVICES:
        secret = {f["name"] for f in sdk["services"][name]["fields"] if f["secret"]}
        settings = {k: v for k, v in stack.settings(name).items() if k in _fields(sdk, name)}
        config: Obj = {k: v for k, v in settings.items() if k not in secret}
        # keys the chart's defaults set but the stack does not: removed (null deletes in Helm)
        config |= {k: None for k in defaults[name].get("config", {}) if k not in config}
        services[name] = {"enabled": True, "config": config}
        if values := {k: str(v) for k, v in settings.items() if k in secret}:
            inline[name] = values
    return {"services": services, "secrets": {"existingSecret": "", "inline": inline}}


def _overlay(base: Any, over: Any) -> Any:
    """Merge maps, keeping ``None`` so that Helm deletes the key from the chart's defaults."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _overlay(base.get(k), v) for k, v in over.items()}}
    return over


def _fields(sdk: dict[str, Any], name: str) -> set[str]:
    return {f["name"] for f in sdk["services"][name]["fields"]}


def _kubelet_layout(root: Path, objects: list[Obj], singleuser: Obj) -> list[str]:
    """Write the pod's mounts under ``root``; return the mount paths."""
    volumes = {v["name"]: v for v in singleuser["storage"]["extraVolumes"]}
    mount_paths = []
    for mount in singleuser["storage"]["extraVolumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            source = volume["configMap"]
            data = one(objects, "ConfigMap", source["name"])["data"]
            files = {k: v.encode() for k, v in data.items()}
        else:
            source = volume["secret"]
            data = one(objects, "Secret", source["secretName"]).get("data") or {}
            files = {k: base64.b64decode(v) for k, v in data.items()}
        mode = source.get("defaultMode", 0o644)
        target = root / mount["mountPath"].lstrip("/")
        if sub := mount.get("subPath"):
            files = {"": files[sub]}
        for key, content in files.items():
            path = target / key if key else target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(mode)
        mount_paths.append(mount["mountPath"])
    return mount_paths


def _pod_env(root: Path, singleuser: Obj, mount_paths: list[str]) -> dict[str, str]:
    env = {}
    for name, entry in (singleuser.get("extraEnv") or {}).items():
        assert not isinstance(entry, dict), f"{name}: valueFrom is not laid out by this test"
        value = str(entry)
        if any(value == m or value.startswith(m.rstrip("/") + "/") for m in mount_paths):
            value = str(root / value.lstrip("/"))
        env[name] = value
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
    values = _overlay(load_values(CHART / "examples" / "minimal.yaml"), _stack_values(stack, sdk))
    objects = render(values)
    singleuser = merged_values(values)["jupyterhub"]["singleuser"]
    root = tmp_path / "pod"
    mount_paths = _kubelet_layout(root, objects, singleuser)
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
