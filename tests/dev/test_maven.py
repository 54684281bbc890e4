"""The Maven cache (:mod:`carbon_sdk.dev.maven`) against a stand-in ``mvn``: single artifacts,
a dependency set from a generated pom, checksums, interrupted and concurrent builds."""

from __future__ import annotations

import json
import os
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from carbon_sdk.dev import DevStackError, ServiceContext, maven
from carbon_sdk.dev.maven import Artifact
from carbon_sdk.dev.progress import Progress

KAFKA = [Artifact.parse("org.apache.kafka:kafka_2.13:4.4.0"), Artifact.parse("g.log:log4j:2.0")]

# Copies files from REPO like the dependency plugin does; logs each call's arguments to LOG.
# copy-dependencies copies the pom's dependencies plus REPO/transitive/* (their dependencies).
_FAKE_MVN = """\
import os, shutil, sys, time, xml.etree.ElementTree as ET
repo, log = os.environ["FAKE_REPO"], os.environ["FAKE_LOG"]
args = sys.argv[1:]
with open(log, "a") as out:
    out.write(" ".join(args) + "\\n")
opts = dict(a[2:].split("=", 1) for a in args if a.startswith("-D") and "=" in a)
time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
out = opts["outputDirectory"]
if any(a.endswith(":copy") for a in args):
    group, artifact, version, ext = opts["artifact"].split(":")
    if artifact == os.environ.get("FAKE_FAIL"):
        sys.exit("Could not find artifact " + opts["artifact"])
    shutil.copy(f"{repo}/{artifact}-{version}.{ext}", out)
else:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(args[args.index("-f") + 1])
    for dep in pom.iterfind(".//m:dependency", ns):
        artifact = dep.findtext("m:artifactId", namespaces=ns)
        version = dep.findtext("m:version", namespaces=ns)
        shutil.copy(f"{repo}/{artifact}-{version}.jar", out)
    for extra in os.listdir(f"{repo}/transitive"):
        shutil.copy(f"{repo}/transitive/{extra}", out)
"""


class _Recorder(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[int] = []

    def downloading(self, name: str, done: int, total: int | None) -> None:
        self.events.append(done)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``mvn`` on PATH and its repository; returns the repository."""
    repo, bin_dir = tmp_path / "repo", tmp_path / "bin"
    (repo / "transitive").mkdir(parents=True)
    bin_dir.mkdir()
    (repo / "tool-1.0.zip").write_bytes(b"zip" * 1000)
    (repo / "server-1.0.jar").write_bytes(b"jar" * 3000)
    for artifact in KAFKA:
        (repo / artifact.file_name).write_bytes(artifact.artifact.encode() * 100)
    (repo / "transitive" / "kafka-clients-4.4.0.jar").write_bytes(b"clients")
    script = bin_dir / "mvn"
    script.write_text(f"#!{sys.executable}\n{_FAKE_MVN}")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_REPO", str(repo))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "mvn.log"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the local repository is watched
    return repo


def _ctx(tmp_path: Path, progress: Progress | None = None) -> ServiceContext:
    home = tmp_path / "svc"
    home.mkdir(exist_ok=True)
    return ServiceContext(
        name="svc",
        home=home,
        log_path=home / "svc.log",
        ports={},
        secrets={},
        shared_dir=tmp_path / "shared",
        progress=progress or Progress(),
    )


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "mvn.log"
    return log.read_text().splitlines() if log.exists() else []


TOOLS = [Artifact("org.example", "tool", "1.0", "zip"), Artifact("org.example", "server", "1.0")]


def _copy_into(ctx: ServiceContext) -> Callable[[Path], None]:
    """A build that fetches the first of :data:`TOOLS`."""

    def build(target: Path) -> None:
        maven.copy_artifacts(ctx, TOOLS[:1], target)

    return build


def test_coordinates_parse_and_name_files() -> None:
    artifact = Artifact.parse("io.trino:trino-server-core:476:tar.gz")
    assert str(artifact) == "io.trino:trino-server-core:476:tar.gz"
    assert artifact.file_name == "trino-server-core-476.tar.gz"
    assert str(Artifact.parse("org.apache.kafka:kafka_2.13:4.4.0")).endswith(":4.4.0:jar")
    assert artifact.repository_dir().parts[-4:] == ("io", "trino", "trino-server-core", "476")
    with pytest.raises(ValueError, match="not a Maven coordinate"):
        Artifact.parse("io.trino:trino-server-core")


def test_cache_dir_is_under_the_xdg_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert maven.cache_dir("kafka", "4.4.0") == tmp_path / "carbon-sdk" / "kafka" / "4.4.0"


def test_single_artifacts_are_fetched_with_strict_checksums(fake: Path, tmp_path: Path) -> None:
    recorder = _Recorder()
    ctx, entry = _ctx(tmp_path, recorder), tmp_path / "cache" / "tools"
    sources = [str(a) for a in TOOLS]
    content = maven.ensure_cached(
        ctx, entry, sources, lambda target: maven.copy_artifacts(ctx, TOOLS, target)
    )
    assert sorted(p.name for p in content.iterdir()) == ["server-1.0.jar", "tool-1.0.zip"]
    calls = _calls(tmp_path)
    assert len(calls) == 2 and all(" -C " in f" {c} " and "-B" in c.split() for c in calls)
    assert "-Dartifact=org.example:tool:1.0:zip" in calls[0]
    assert recorder.events[-1] == sum(p.stat().st_size for p in content.iterdir())
    marker = json.loads((entry / maven.MARKER).read_text())
    assert marker["sources"] == sources
    assert set(marker["files"]) == {"server-1.0.jar", "tool-1.0.zip"}
    assert maven.is_complete(entry, sources)
    # complete: no second fetch, and other sources are a different entry's content
    assert maven.ensure_cached(ctx, entry, sources, _fail) == content
    assert len(_calls(tmp_path)) == 2
    assert not maven.is_complete(entry, sources[:1])


def _fail(target: Path) -> None:
    raise AssertionError("the cache was complete; nothing should be built")


def test_dependency_set_is_resolved_from_a_generated_pom(fake: Path, tmp_path: Path) -> None:
    ctx, entry = _ctx(tmp_path), tmp_path / "cache" / "kafka"
    lib = maven.ensure_cached(
        ctx,
        entry,
        [str(a) for a in KAFKA],
        lambda target: maven.resolve_dependencies(ctx, KAFKA, target / "libs"),
    )
    names = sorted(p.name for p in (lib / "libs").iterdir())
    assert names == ["kafka-clients-4.4.0.jar", "kafka_2.13-4.4.0.jar", "log4j-2.0.jar"]
    (call,) = _calls(tmp_path)
    assert "copy-dependencies" in call and "-DincludeScope=runtime" in call and " -C " in call


def test_generated_pom_is_valid_xml_with_the_coordinates() -> None:
    pom = ET.fromstring(maven._pom("kafka", [*KAFKA, Artifact("g", "a&b", "1", "zip")]))
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    deps = [
        (d.findtext("m:artifactId", namespaces=ns), d.findtext("m:type", namespaces=ns))
        for d in pom.iterfind(".//m:dependency", ns)
    ]
    assert deps == [("kafka_2.13", None), ("log4j", None), ("a&b", "zip")]


def test_missing_mvn_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevStackError, match="apt-get install maven"):
        maven.copy_artifacts(_ctx(tmp_path), TOOLS, tmp_path / "out")


def test_interrupted_build_leaves_no_content_and_is_redone(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, entry = _ctx(tmp_path), tmp_path / "cache" / "tools"
    sources = [str(a) for a in TOOLS]

    def build(target: Path) -> None:
        maven.copy_artifacts(ctx, TOOLS, target)

    monkeypatch.setenv("FAKE_FAIL", "server")  # the second artifact fails
    with pytest.raises(DevStackError, match="Could not find artifact"):
        maven.ensure_cached(ctx, entry, sources, build)
    assert sorted(p.name for p in entry.iterdir()) == [".lock"]
    assert not maven.is_complete(entry, sources)
    monkeypatch.delenv("FAKE_FAIL")
    content = maven.ensure_cached(ctx, entry, sources, build)
    assert (content / "server-1.0.jar").is_file()


def test_corrupted_cache_is_detected_and_fetched_again(fake: Path, tmp_path: Path) -> None:
    ctx, entry = _ctx(tmp_path), tmp_path / "cache" / "tools"
    sources = [str(TOOLS[0])]
    content = maven.ensure_cached(ctx, entry, sources, _copy_into(ctx))
    original = (content / "tool-1.0.zip").read_bytes()
    with (content / "tool-1.0.zip").open("r+b") as damaged:  # same size, other bytes
        damaged.write(b"ZIP")
    assert not maven.is_complete(entry, sources)
    maven.ensure_cached(ctx, entry, sources, _copy_into(ctx))
    assert (content / "tool-1.0.zip").read_bytes() == original
    (content / "tool-1.0.zip").unlink()  # a missing file too
    assert not maven.is_complete(entry, sources)
    maven.ensure_cached(ctx, entry, sources, _copy_into(ctx))
    assert maven.is_complete(entry, sources) and len(_calls(tmp_path)) == 3


def test_concurrent_callers_fetch_once(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DELAY", "0.5")
    ctx, entry = _ctx(tmp_path), tmp_path / "cache" / "tools"
    sources = [str(TOOLS[0])]
    results: list[Path] = []

    def fetch() -> None:
        results.append(maven.ensure_cached(ctx, entry, sources, _copy_into(ctx)))

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert len(_calls(tmp_path)) == 1  # the lock made the others wait and reuse it
