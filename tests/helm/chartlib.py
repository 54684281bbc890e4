"""Render the carbon-jupyterhub chart with real Helm (helm-python-sdk: the Helm 4 Go SDK, no
binary) and hand the tests its objects, merged values and the reference schemas."""

from __future__ import annotations

import os
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
