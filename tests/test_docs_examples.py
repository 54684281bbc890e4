"""Every ```python block of README.md and docs/*.md runs against the local stack, the blocks of a
page in order in one namespace (a fresh database, a fresh bucket as ``s3.bucket``, a temporary
working directory). A block that cannot run says why on the line before its fence:
``<!-- not-run: reason -->``; a block without a reason runs."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from carbon_sdk.dev.pytest_plugin import StackEnv, StartServices
from carbon_sdk.dev.registry import SERVICES
from carbon_sdk.dev.s3 import admin_client
from carbon_sdk.settings.carbon import reload

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!-- not-run: (?P<reason>\S.*?) -->")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence
    code: str
    not_run: str | None  # the reason given


def blocks(page: Path) -> list[Block]:
    """The ```python blocks of ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.strip() == "```python":
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            marker = NOT_RUN.fullmatch(lines[index - 1].strip()) if index else None
            code = "\n".join(lines[index + 1 : end])
            found.append(Block(page, index + 1, code, marker["reason"] if marker else None))
    return found


ALL = [block for page in PAGES for block in blocks(page)]
RAN: list[Block] = []


@pytest.fixture
def fresh_bucket(carbon_services: StartServices) -> Iterator[str]:
    """A new bucket, deleted with its objects afterwards."""
    client = admin_client(carbon_services("s3").settings("s3"))
    name = f"docs-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=name, Delete={"Objects": keys})
    client.delete_bucket(Bucket=name)


@pytest.mark.stack
@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if any(not b.not_run for b in blocks(page))],
    ids=lambda page: page.relative_to(ROOT).as_posix(),
)
def test_examples_run(
    page: Path,
    stack_env: StackEnv,
    fresh_database: str,
    fresh_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: dict[str, str],
) -> None:
    # a connector's page also gets its server (mlflow, kafka, ray...); DataHub has none here:
    # its page runs on DataHub Lite, the local backend
    own = (page.stem,) if page.stem in SERVICES else ()
    stack_env("postgres", "s3", "trino", *own)
    if page.stem == "datahub":
        monkeypatch.setenv("CARBON_DATAHUB__BACKEND", "lite")
        monkeypatch.setenv("CARBON_DATAHUB__LITE_PATH", str(tmp_path / "lite.db"))
    monkeypatch.setenv("CARBON_POSTGRES__DATABASE", fresh_database)
    monkeypatch.setenv("CARBON_S3__BUCKET", fresh_bucket)
    monkeypatch.chdir(tmp_path)
    reload()
    namespace: dict[str, object] = {"__name__": "__docs__"}
    try:
        for block in blocks(page):
            if block.not_run is None:
                # padded so that a traceback names the markdown file and line
                exec(compile("\n" * block.line + block.code, str(page), "exec"), namespace)
                RAN.append(block)
    finally:
        # a page's Ray Client connection would outlive the stack: its reconnect thread then
        # logs tracebacks when the test session ends
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()
    skipped = [b for b in ALL if b.not_run]
    report["docs examples"] = (
        f"docs examples: {len(RAN)} python blocks ran, {len(skipped)} not run "
        f"({'; '.join(f'{b.page.name}:{b.line}: {b.not_run}' for b in skipped)})"
    )
