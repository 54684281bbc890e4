"""S3 transfers against the local stack's SeaweedFS: one large file and many small files.

Contenders, each with its client created before timing:
- ``carbon_sdk.s3.upload/download`` (TransferManager, tuned part size and concurrency),
- plain ``boto3`` ``client.upload_file/download_file`` with the default TransferConfig
  (for the small files: one call per file, in a loop, as a script would do),
- ``s3fs`` ``put``/``get`` with default options.

The runs are interleaved round-robin (drift hits every contender alike) and medians recorded;
the baseline of each record is the fastest of the plain tools. The stack is started by the same
supervisor as ``carbon-sdk dev up`` in a temporary ``CARBON_DEV_HOME`` and purged at the end.

    python benchmarks/bench_s3.py            # 1 GiB + 2,000 x 16 KiB, 3 rounds
    BENCH_S3_LARGE_MIB=256 python benchmarks/bench_s3.py
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from harness import record, seconds

LARGE_MIB = int(os.environ.get("BENCH_S3_LARGE_MIB", "1024"))
SMALL_FILES = int(os.environ.get("BENCH_S3_SMALL_FILES", "2000"))
SMALL_BYTES = 16 * 1024
ROUNDS = int(os.environ.get("BENCH_S3_ROUNDS", "3"))
BUCKET = "scratch"


def write_random(path: Path, size: int) -> None:
    chunk = os.urandom(8 * 1024 * 1024)
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def settle(master_port: int | None) -> None:
    """Before each timed run: flush dirty pages (the server writes to disk, and the previous
    run's writeback must not slow the next contender) and let SeaweedFS reclaim overwritten
    data (it keeps appending to its volumes otherwise)."""
    if master_port:
        url = f"http://127.0.0.1:{master_port}/vol/vacuum?garbageThreshold=0.01"
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=60).read()
    os.sync()


def round_robin(
    contenders: dict[str, Callable[[], object]], rounds: int, master_port: int | None
) -> dict[str, float]:
    """Median seconds of each contender over ``rounds`` interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            settle(master_port)
            times[name].append(seconds(fn))
            print(f"  {name}: {times[name][-1]:.3f} s", file=sys.stderr)
    return {name: statistics.median(ts) for name, ts in times.items()}


def report(name: str, medians: dict[str, float], size: int, files: int, notes: str) -> None:
    subject = medians["carbon_sdk.s3"]
    baselines = {k: v for k, v in medians.items() if k != "carbon_sdk.s3"}
    best = min(baselines, key=lambda k: baselines[k])
    mib = size / 2**20
    record(
        name,
        "carbon_sdk.s3",
        subject,
        best,
        baselines[best],
        ROUNDS,
        notes,
        bytes=size,
        files=files,
        medians_s={k: round(v, 4) for k, v in medians.items()},
        mib_per_s={k: round(mib / v, 1) for k, v in medians.items()},
        files_per_s={k: round(files / v, 1) for k, v in medians.items()},
        speedup_vs_best=round(baselines[best] / subject, 3),
    )


def main() -> None:
    from carbon_sdk.dev.supervisor import Stack

    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    stack = Stack(work / "dev-home", profile=None)
    try:
        stack.up(["s3"])
        for key, value in stack.env().items():
            os.environ[key] = value
        master = next((r.ports.get("master") for r in stack.records() if r.name == "s3"), None)
        run(work, master)
    finally:
        stack.down(purge=True)
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, master: int | None) -> None:
    import boto3
    import s3fs
    from botocore.config import Config

    import carbon_sdk
    from carbon_sdk import s3

    carbon_sdk.reload()
    settings = carbon_sdk.get_settings().s3
    plain = boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret("secret_access_key"),
        region_name=settings.region,
        config=Config(s3={"addressing_style": "path"}),
    )
    fs = s3fs.S3FileSystem(
        key=settings.access_key_id,
        secret=settings.secret("secret_access_key"),
        endpoint_url=settings.endpoint_url,
        client_kwargs={"region_name": settings.region},
    )
    s3.ls(f"s3://{BUCKET}/")  # warm the SDK's shared client like the others

    # -- one large file ---------------------------------------------------------------
    size = LARGE_MIB * 2**20
    large = work / "large.bin"
    write_random(large, size)
    out = work / "large.out"
    key = "bench/large.bin"
    print(f"large file: {LARGE_MIB} MiB", file=sys.stderr)
    up = round_robin(
        {
            "carbon_sdk.s3": lambda: s3.upload(large, f"s3://{BUCKET}/{key}"),
            "boto3.upload_file": lambda: plain.upload_file(str(large), BUCKET, key),
            "s3fs.put": lambda: fs.put(str(large), f"{BUCKET}/{key}"),
        },
        ROUNDS,
        master,
    )
    down = round_robin(
        {
            "carbon_sdk.s3": lambda: s3.download(f"s3://{BUCKET}/{key}", out),
            "boto3.download_file": lambda: plain.download_file(BUCKET, key, str(out)),
            "s3fs.get": lambda: fs.get(f"{BUCKET}/{key}", str(out)),
        },
        ROUNDS,
        master,
    )
    plain.delete_object(Bucket=BUCKET, Key=key)
    large.unlink()
    out.unlink(missing_ok=True)
    notes = (
        f"{LARGE_MIB} MiB, SeaweedFS weed mini on localhost; SDK part "
        f"{settings.multipart_chunksize // 2**20} MiB x {settings.max_concurrency}; "
        f"{os.cpu_count()} cores"
    )
    report("s3_large_upload", up, size, 1, notes)
    report("s3_large_download", down, size, 1, notes)

    # -- many small files -------------------------------------------------------------
    small = work / "small"
    small.mkdir()
    for i in range(SMALL_FILES):
        (small / f"f{i:05d}.bin").write_bytes(os.urandom(SMALL_BYTES))
    files = sorted(small.iterdir())
    prefix = "bench/small"
    target = work / "small.out"

    def boto3_put_all() -> None:
        for f in files:
            plain.upload_file(str(f), BUCKET, f"{prefix}/{f.name}")

    def boto3_get_all() -> None:
        target.mkdir(exist_ok=True)
        for f in files:
            plain.download_file(BUCKET, f"{prefix}/{f.name}", str(target / f.name))

    def fresh(fn: Callable[[], object]) -> Callable[[], None]:
        def call() -> None:
            shutil.rmtree(target, ignore_errors=True)
            fn()

        return call

    print(f"small files: {SMALL_FILES} x {SMALL_BYTES // 1024} KiB", file=sys.stderr)
    up = round_robin(
        {
            "carbon_sdk.s3": lambda: s3.upload(small, f"s3://{BUCKET}/{prefix}"),
            "boto3.upload_file loop": boto3_put_all,
            "s3fs.put": lambda: fs.put(str(small) + "/", f"{BUCKET}/{prefix}/", recursive=True),
        },
        ROUNDS,
        master,
    )
    down = round_robin(
        {
            "carbon_sdk.s3": fresh(lambda: s3.download(f"s3://{BUCKET}/{prefix}/", target)),
            "boto3.download_file loop": fresh(boto3_get_all),
            "s3fs.get": fresh(
                lambda: fs.get(f"{BUCKET}/{prefix}/", str(target) + "/", recursive=True)
            ),
        },
        ROUNDS,
        master,
    )
    notes = f"{SMALL_FILES} files x {SMALL_BYTES // 1024} KiB; files_per_s per tool in the JSON"
    total = SMALL_FILES * SMALL_BYTES
    report("s3_small_upload", up, total, SMALL_FILES, notes)
    report("s3_small_download", down, total, SMALL_FILES, notes)


if __name__ == "__main__":
    main()
