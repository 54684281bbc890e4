"""Maven artifacts for the JVM servers of the local stack, fetched once into a shared cache.

Artifacts come from the machine's ``mvn`` (its ``settings.xml``, mirrors and proxies apply;
carbon-sdk holds no repository URLs) with strict checksums (``-C``: Maven checks every download
against the repository's ``.sha1``). What a service makes of them (a server unpacked from a
tarball, a directory of jars) is a cache entry, by default under
``$XDG_CACHE_HOME/carbon-sdk/<name>/<version>`` (:func:`cache_dir`)::

    <entry>/
        .lock           held while the entry is built, so concurrent services build it once
        complete.json   written last: the sources and the sha256 of every file in content/
        content/        made in a temporary directory (.build-*) and renamed into place

:func:`ensure_cached` builds an entry unless it is complete and every file still has its
recorded sha256, so an interrupted build is never mistaken for a complete one and a corrupted
cache is rebuilt. A build uses :func:`copy_artifacts` (single artifacts by coordinate, e.g. a
server tarball and plugin zips) or :func:`resolve_dependencies` (a dependency set with its
runtime dependencies, from a generated pom). Both report progress with ``ctx.downloading``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from carbon_sdk._files import locked, write_atomic, xdg_home

from .service import DevStackError, ServiceContext

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MARKER = "complete.json"
CONTENT = "content"
TIMEOUT = 1800.0
_PROGRESS_SECONDS = 0.5
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """A Maven coordinate ``group:artifact:version[:extension]`` (extension default ``jar``)."""

    group: str
    artifact: str
    version: str
    extension: str = "jar"

    @classmethod
    def parse(cls, coordinate: str) -> Artifact:
        """Parse ``group:artifact:version`` or ``group:artifact:version:extension``."""
        parts = coordinate.split(":")
        if len(parts) not in (3, 4) or not all(parts):
            raise ValueError(f"not a Maven coordinate group:artifact:version[:ext]: {coordinate}")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}:{self.extension}"

    @property
    def file_name(self) -> str:
        """The file name Maven gives it: ``<artifact>-<version>.<extension>``."""
        return f"{self.artifact}-{self.version}.{self.extension}"

    def repository_dir(self) -> Path:
        """Where Maven's default local repository (``~/.m2/repository``) keeps it."""
        return _local_repository().joinpath(*self.group.split("."), self.artifact, self.version)


def cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/carbon-sdk/<parts>`` (``~/.cache/carbon-sdk/...``), the shared cache."""
    return xdg_home("cache").joinpath("carbon-sdk", *parts)


def content_dir(entry: Path) -> Path:
    """Where :func:`ensure_cached` puts the content of ``entry`` (not checked here)."""
    return entry / CONTENT


def is_complete(entry: Path, sources: Sequence[str]) -> bool:
    """Whether ``entry`` was built from ``sources`` and every file still has its sha256."""
    try:
        marker = json.loads((entry / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("sources") != list(sources):
        return False
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return False
    content = content_dir(entry)
    try:
        return all(_sha256(content / name) == digest for name, digest in files.items())
    except OSError:
        return False


def ensure_cached(
    ctx: ServiceContext, entry: Path, sources: Sequence[str], build: Callable[[Path], None]
) -> Path:
    """The content directory of cache ``entry``, built first unless :func:`is_complete`.

    ``build(target)`` must create the directory ``target`` (from ``sources``, e.g. Maven
    coordinates, recorded in the marker); it may use ``target.parent`` for scratch files.
    Safe to call from several services and processes at once: a lock file serializes them.
    """
    if is_complete(entry, sources):
        return content_dir(entry)
    with locked(entry / ".lock"):
        if is_complete(entry, sources):  # another service finished it while we waited
            return content_dir(entry)
        for stale in entry.glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(dir=entry, prefix=".build-"))
        try:
            target = work / CONTENT
            build(target)
            if not target.is_dir():
                raise DevStackError(f"{ctx.name}: building {entry} made no {CONTENT} directory")
            files = {
                path.relative_to(target).as_posix(): _sha256(path)
                for path in sorted(target.rglob("*"))
                if path.is_file() and not path.is_symlink()
            }
            (entry / MARKER).unlink(missing_ok=True)
            shutil.rmtree(content_dir(entry), ignore_errors=True)
            target.rename(content_dir(entry))
            marker = {"sources": list(sources), "files": files}
            write_atomic(entry / MARKER, json.dumps(marker, indent=1) + "\n", 0o644)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return content_dir(entry)


def copy_artifacts(ctx: ServiceContext, artifacts: Sequence[Artifact], out: Path) -> list[Path]:
    """Fetch each artifact (``dependency:copy``, no transitive dependencies) into ``out``;
    returns their paths in order. Progress: the bytes fetched so far."""
    mvn = find_mvn(ctx)
    out.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    done = 0
    for artifact in artifacts:
        with _report_growth(ctx, done, [artifact.repository_dir()], out):
            goal = [f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={artifact}"]
            _run(ctx, mvn, [*goal, f"-DoutputDirectory={out}"], cwd=out)
        path = out / artifact.file_name
        if not path.is_file():
            raise DevStackError(f"{ctx.name}: mvn did not produce {path.name} ({artifact})")
        copied.append(path)
        done += path.stat().st_size
        ctx.downloading(done, None)
    return copied


def resolve_dependencies(
    ctx: ServiceContext, dependencies: Sequence[Artifact], out: Path, scope: str = "runtime"
) -> list[Path]:
    """Fetch ``dependencies`` and everything they need at ``scope`` into ``out`` (one flat
    directory, e.g. a server's ``lib``) with ``dependency:copy-dependencies`` on a generated
    pom; returns the files, sorted. Progress: the bytes in ``out`` and in the local repository
    directories of the declared groups."""
    mvn = find_mvn(ctx)
    out.mkdir(parents=True, exist_ok=True)
    groups = {_local_repository().joinpath(*d.group.split(".")) for d in dependencies}
    with tempfile.TemporaryDirectory(prefix="carbon-dev-pom-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_pom(ctx.name, dependencies), encoding="utf-8")
        with _report_growth(ctx, 0, sorted(groups), out):
            goal = [f"{DEPENDENCY_PLUGIN}:copy-dependencies", f"-DincludeScope={scope}"]
            _run(ctx, mvn, ["-f", str(pom), *goal, f"-DoutputDirectory={out}"], cwd=Path(tmp))
    files = sorted(p for p in out.iterdir() if p.is_file())
    missing = [d for d in dependencies if not (out / d.file_name).is_file()]
    if missing:
        raise DevStackError(f"{ctx.name}: mvn did not produce {', '.join(map(str, missing))}")
    ctx.downloading(sum(p.stat().st_size for p in files), None)
    return files


def find_mvn(ctx: ServiceContext) -> str:
    """The ``mvn`` on ``PATH``; raises saying how to install it."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevStackError(
            f"{ctx.name} is fetched with Maven, but `mvn` is not on PATH. Install it (Debian"
            " package `maven`: apt-get install maven)."
        )
    return mvn


def _run(ctx: ServiceContext, mvn: str, args: list[str], *, cwd: Path) -> None:
    """``mvn`` in batch mode, quiet, updating releases and failing on a checksum mismatch."""
    ctx.run([mvn, "-B", "-q", "-U", "-C", "-Dstyle.color=never", *args], cwd=cwd, timeout=TIMEOUT)


def _pom(name: str, dependencies: Sequence[Artifact]) -> str:
    entries = "".join(
        "    <dependency>"
        f"<groupId>{escape(d.group)}</groupId>"
        f"<artifactId>{escape(d.artifact)}</artifactId>"
        f"<version>{escape(d.version)}</version>"
        + (f"<type>{escape(d.extension)}</type>" if d.extension != "jar" else "")
        + "</dependency>\n"
        for d in dependencies
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>carbon-sdk.dev</groupId>\n"
        f"  <artifactId>{escape(name)}-dependencies</artifactId>\n"
        "  <version>0</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{entries}  </dependencies>\n"
        "</project>\n"
    )


def _local_repository() -> Path:
    return Path.home() / ".m2" / "repository"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_size(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for entry in path.rglob("*"):
            with contextlib.suppress(OSError):
                total += entry.stat().st_size if entry.is_file() else 0
    return total


@contextlib.contextmanager
def _report_growth(
    ctx: ServiceContext, base: int, repositories: Sequence[Path], out: Path
) -> Iterator[None]:
    """While the body runs, report ``base`` plus the bytes Maven has written so far: the growth
    of the local repository directories (a real download) or of ``out`` (a copy)."""

    def sizes() -> tuple[int, int]:
        return sum(_tree_size(r) for r in repositories), _tree_size(out)

    before = sizes()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(_PROGRESS_SECONDS):
            now = sizes()
            ctx.downloading(base + max(now[0] - before[0], now[1] - before[1]), None)

    watcher = threading.Thread(target=watch, name=f"{ctx.name}-download", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
