"""JDK discovery for the JVM servers of the local stack (Trino, Kafka, ...), by major version.

The system ``java`` is often older than a server needs, so each JVM service asks for a JDK of
at least its version with :func:`find_java_home` and runs that JDK's ``bin/java``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .service import DevStackError

JAVA_HOME_ENV = "CARBON_DEV_JAVA_HOME"
PREFERRED_JAVA_HOME = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
JVM_DIR = Path("/usr/lib/jvm")


def java_version(home: Path) -> int | None:
    """The major Java version of the JDK at ``home`` (from its ``release`` file), or None when
    ``home`` has no ``release`` file or no ``bin/java``."""
    try:
        text = (home / "release").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match and (home / "bin" / "java").is_file() else None


def find_java_home(min_major: int, *, purpose: str) -> Path:
    """A JDK of Java ``min_major`` or newer for ``purpose`` (e.g. ``"Trino 476"``).

    Looks at ``$CARBON_DEV_JAVA_HOME`` (which must then qualify), else Temurin 25 at its Debian
    path, else ``$JAVA_HOME``, else the newest JDK under ``/usr/lib/jvm``. Raises
    :class:`DevStackError` saying what needs which version and how to provide it.
    """
    if explicit := os.environ.get(JAVA_HOME_ENV):
        home = Path(explicit)
        version = java_version(home)
        if version is None or version < min_major:
            raise DevStackError(
                f"{JAVA_HOME_ENV}={explicit} is not a JDK {min_major} or newer"
                f" (found: {version or 'no release file or bin/java'}), which {purpose} needs."
            )
        return home
    candidates = [PREFERRED_JAVA_HOME]
    if env_home := os.environ.get("JAVA_HOME"):
        candidates.append(Path(env_home))
    installed = [(java_version(p), p) for p in sorted(JVM_DIR.glob("*"))]
    candidates += [p for v, p in sorted(installed, key=lambda vp: -(vp[0] or 0)) if v]
    for home in candidates:
        version = java_version(home)
        if version is not None and version >= min_major:
            return home
    raise DevStackError(
        f"{purpose} needs Java {min_major} or newer; none found (checked {PREFERRED_JAVA_HOME},"
        f" $JAVA_HOME and {JVM_DIR}/*). Install a JDK 25, e.g. Eclipse Temurin 25"
        f" (https://adoptium.net, package temurin-25-jdk), or set {JAVA_HOME_ENV}."
    )
