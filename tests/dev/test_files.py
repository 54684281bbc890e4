"""The shared file helpers: XDG base directories, lock files, atomic writes."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from carbon_sdk._files import locked, write_atomic, xdg_home


@pytest.mark.parametrize(
    ("kind", "variable", "default"),
    [
        ("config", "XDG_CONFIG_HOME", ".config"),
        ("cache", "XDG_CACHE_HOME", ".cache"),
        ("data", "XDG_DATA_HOME", ".local/share"),
    ],
)
def test_xdg_home_uses_the_variable_else_the_default(
    kind: str, variable: str, default: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(variable, str(tmp_path / "xdg"))
    assert xdg_home(kind) == tmp_path / "xdg"  # type: ignore[arg-type]
    monkeypatch.setenv(variable, "")  # empty counts as unset
    assert xdg_home(kind) == tmp_path / "home" / default  # type: ignore[arg-type]
    monkeypatch.delenv(variable)
    assert xdg_home(kind) == tmp_path / "home" / default  # type: ignore[arg-type]


def test_locked_serializes_holders_and_creates_parents(tmp_path: Path) -> None:
    lock = tmp_path / "a" / "b" / ".lock"
    events: list[str] = []

    def hold(name: str) -> None:
        with locked(lock):
            events.append(f"{name} in")
            time.sleep(0.2)
            events.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(n,)) for n in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lock.is_file()
    assert [e.split()[1] for e in events] == ["in", "out", "in", "out"]  # never interleaved
    assert events[0].split()[0] == events[1].split()[0]


def test_write_atomic_sets_the_mode_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "new" / "secret.yaml"
    write_atomic(target, "one\n")
    assert target.read_text() == "one\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_atomic(target, "two\n", 0o644)
    assert target.read_text() == "two\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["secret.yaml"]  # no temp left


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "dir" / "config.yaml"
    target.parent.mkdir()
    target.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "bad \udc00 surrogate")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.yaml"]
