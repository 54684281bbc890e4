"""The garbage-collector pause around segment decoding (:data:`carbon_sdk._spool.gc_paused`)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from carbon_sdk._spool import gc_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_paused_inside_and_restored_after_the_last_thread_leaves() -> None:
    inside, release = threading.Barrier(3), threading.Event()

    def decode() -> None:
        with gc_paused:
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=decode) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert not gc.isenabled()
    release.set()
    for thread in threads:
        thread.join()
    assert gc.isenabled()


def test_restored_after_an_error() -> None:
    with pytest.raises(ValueError), gc_paused:
        raise ValueError("bad segment")
    assert gc.isenabled()


def test_a_collector_turned_off_by_someone_else_stays_off() -> None:
    gc.disable()
    with gc_paused:
        pass
    assert not gc.isenabled()
