"""Render the carbon-jupyterhub chart with real Helm (helm-python-sdk: the Helm 4 Go SDK, no
binary) and hand the tests its objects, merged values and the reference schemas."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "carbon-jupyterhub"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
ARGOCD_APPLICATION = REPO / "helm" / "argocd" / "application.yaml"
GOLDEN = REPO / "tests" / "helm" / "golden"
RELEASE = "carbon"
NAMESPACE = "jupyter"
# Relative to the repository root, as the shared layout defines it.
SHARED_SCHEMAS = Path("..") / "shared" / "schemas"

Obj = dict[str, Any]


def shared_schemas() -> Path:
    """``../shared/schemas`` (from the repo root); skips the test when the folder is absent."""
    path = REPO / SHARED_SCHEMAS
    if not path.is_dir():
        pytest.skip(f"{SHARED_SCHEMAS} (reference schemas, read-only) is absent: cannot validate")
    return path


def load_values(path: Path | None) -> Obj:
    """An example values file (``None``: the chart's defaults only)."""
    return {} if path is None else yaml.safe_load(path.read_text()) or {}


def _chart() -> Any:
    import helm_python

    return helm_python.Chart.load(os.fspath(CHART))


def render_files(values: Obj | None = None) -> dict[str, str]:
    """Template path -> rendered text (Helm validates values against values.schema.json)."""
    return dict(_chart().render(values or None, name=RELEASE, namespace=NAMESPACE))


def render(values: Obj | None = None) -> list[Obj]:
    """Every rendered object."""
    return [
        doc
        for _, text in sorted(render_files(values).items())
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def merged_values(values: Obj | None = None) -> Obj:
    """The chart's defaults coalesced with ``values``, as an install would use them."""
    merged: Obj = _chart().merge_values(values or None)
    return merged


def by_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def deep_merge(base: Any, over: Any) -> Any:
    """Helm's coalescing for plain data: maps merge, ``None`` deletes, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = deep_merge(base.get(key), value)
        return out
    return over


# -- a user pod, laid out on this machine (the contract test and tests/e2e) --------------------


def stack_values(stack: Any, sdk: dict[str, Any], services: Mapping[str, str], base: Obj) -> Obj:
    """Overrides that point the chart's service blocks at the local stack (secrets inline, dev
    style). ``services`` maps a chart service (``trino``) to the stack service serving it
    (``trino`` or ``trino_oidc``); ``base`` are the values overridden (keys the chart would
    render but the stack does not set are removed: null deletes in Helm)."""
    defaults = merged_values(base)["services"]
    blocks: Obj = {}
    inline: Obj = {}
    for name, served_by in services.items():
        fields = {f["name"] for f in sdk["services"][name]["fields"]}
        secret = {f["name"] for f in sdk["services"][name]["fields"] if f["secret"]}
        settings = {k: v for k, v in stack.settings(served_by).items() if k in fields}
        config: Obj = {k: v for k, v in settings.items() if k not in secret}
        config |= {k: None for k in defaults[name].get("config", {}) if k not in config}
        blocks[name] = {"enabled": True, "config": config}
        if values := {k: str(v) for k, v in settings.items() if k in secret}:
            inline[name] = values
    return {"services": blocks, "secrets": {"existingSecret": "", "inline": inline}}


def overlay(base: Any, over: Any) -> Any:
    """Merge maps, keeping ``None`` so that Helm deletes the key from the chart's defaults."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: overlay(base.get(k), v) for k, v in over.items()}}
    return over


def kubelet_layout(root: Path, objects: list[Obj], singleuser: Obj) -> list[str]:
    """Write the user pod's mounts (``singleuser.storage.extraVolumes``/``extraVolumeMounts``,
    files with the rendered modes) under ``root``, as the kubelet would; return the mount
    paths."""
    volumes = {v["name"]: v for v in singleuser["storage"]["extraVolumes"]}
    mount_paths = []
    for mount in singleuser["storage"]["extraVolumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            source = volume["configMap"]
            found = [
                o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == source["name"]
            ]
            if not found and source.get("optional"):
                continue  # created by the operator, if at all (the kubelet mounts it empty)
            data = one(objects, "ConfigMap", source["name"])["data"]
            files = {k: v.encode() for k, v in data.items()}
        else:
            source = volume["secret"]
            files = secret_data(objects, source["secretName"])
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


def secret_data(objects: list[Obj], name: str) -> dict[str, bytes]:
    """The decoded data of the rendered Secret ``name``."""
    data = one(objects, "Secret", name).get("data") or {}
    return {k: base64.b64decode(v) for k, v in data.items()}


def pod_env(root: Path, extra_env: Obj | None, mount_paths: list[str]) -> dict[str, str]:
    """``extraEnv`` as the container sees it, paths under a mount re-rooted under ``root``
    (``valueFrom`` entries are not laid out)."""
    env = {}
    for name, entry in (extra_env or {}).items():
        assert not isinstance(entry, dict), f"{name}: valueFrom is not laid out here"
        value = str(entry)
        if any(value == m or value.startswith(m.rstrip("/") + "/") for m in mount_paths):
            value = str(root / value.lstrip("/"))
        env[name] = value
    return env


def secret_env(objects: list[Obj], extra_env: Obj | None) -> dict[str, str]:
    """The ``valueFrom.secretKeyRef`` entries of ``extraEnv``, resolved from the rendered
    Secrets (e.g. the hub's ``OAUTH_CLIENT_SECRET``)."""
    env = {}
    for name, entry in (extra_env or {}).items():
        if isinstance(entry, dict) and (ref := entry.get("valueFrom", {}).get("secretKeyRef")):
            env[name] = secret_data(objects, ref["name"])[ref["key"]].decode()
    return env
