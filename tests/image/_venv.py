"""The image's package set installed into a Python 3.13 venv, as the image's pip would.

The venv is cached under ``$CARBON_IMAGE_VENV_CACHE`` (default ``~/.cache/carbon-sdk/image-venv``)
keyed by the requirements file's hash and the interpreter's version, so a second run only
reinstalls the SDK wheel built from the checkout. Creation is locked (one builder at a time)
and atomic (a half-built venv is never used).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "image" / "requirements.txt"


def uv() -> str:
    for candidate in (
        os.environ.get("UV"),
        str(ROOT / ".tools" / "bin" / "uv"),
        shutil.which("uv"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError("uv not found: run `make install`")


def python313() -> str:
    """``$PY313``, else ``python3.13`` from PATH, else pyenv's newest 3.13 (as the Makefile)."""
    candidates = [os.environ.get("PY313"), shutil.which("python3.13")]
    for name in candidates:
        if name and _version(name).startswith("3.13"):
            return name
    pyenv = shutil.which("pyenv")
    if pyenv:
        versions = subprocess.run(
            [pyenv, "versions", "--bare"], capture_output=True, text=True, check=False
        ).stdout.split()
        for version in sorted((v for v in versions if v.startswith("3.13")), reverse=True):
            path = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
            exe = path / version / "bin" / "python3.13"
            if exe.is_file():
                return str(exe)
    raise RuntimeError("python3.13 not found: set PY313=/path/to/python3.13")


def _version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "carbon-sdk" / "image-venv"
    return Path(os.environ.get("CARBON_IMAGE_VENV_CACHE") or default)


def image_venv() -> Path:
    """The cached venv holding exactly the image requirements (the SDK not yet installed)."""
    python = python313()
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + _version(python).encode()).hexdigest()[:16]
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / key
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists():
            return venv
        building = root / f"{key}.building"
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run(
            [uv(), "venv", "--quiet", "--relocatable", "--python", python, str(building)],
            check=True,
        )
        subprocess.run(
            [
                uv(),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(building / "bin" / "python"),
                "--require-hashes",
                "--only-binary",
                ":all:",
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
        )
        (building / ".complete").touch()
        shutil.rmtree(venv, ignore_errors=True)
        building.rename(venv)  # --relocatable: its scripts do not name the build path
        for stale in root.iterdir():  # venvs of older requirements: not needed again
            if stale.is_dir() and stale.name not in {key} and not stale.name.startswith("."):
                shutil.rmtree(stale, ignore_errors=True)
        return venv


def install_sdk(venv: Path, wheel_dir: Path) -> Path:
    """Build the SDK wheel from the checkout (as ``make image-context``) and install it with
    no dependencies and no index (as the Dockerfile); the venv's python."""
    subprocess.run(
        [uv(), "build", "--quiet", "--wheel", "--out-dir", str(wheel_dir)], cwd=ROOT, check=True
    )
    (wheel,) = wheel_dir.glob("carbon_sdk-*.whl")
    python = venv / "bin" / "python"
    subprocess.run(
        [
            uv(),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--no-deps",
            "--no-index",
            "--reinstall",
            str(wheel),
        ],
        check=True,
    )
    return python
