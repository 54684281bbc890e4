"""Total ``carbon-sdk dev up`` time for PostgreSQL + S3 from an empty ``CARBON_DEV_HOME``.

Subject: ``python -m carbon_sdk dev up`` (a fresh process: initdb, both servers started in
parallel, readiness, databases and buckets, profile written). Baseline: a script that does the
same work by hand with ``subprocess``, one server after the other, no supervisor. Both are cold
starts in a new directory; each run is torn down before the next. Target: subject < 5 s.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import command_seconds, interleaved_medians, record

from carbon_sdk.dev import Stack, State, process
from carbon_sdk.dev.ports import allocate
from carbon_sdk.dev.postgres import DATABASES, find_bin_dir
from carbon_sdk.dev.s3 import BUCKETS, GRPC_OFFSET, find_weed

N = 5


def _env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "PG", "AWS_"))}
    return clean | {"CARBON_DEV_HOME": str(home), "CARBON_USER_CONFIG": str(home / "config.yaml")}


def subject_run() -> float:
    home = Path(tempfile.mkdtemp(prefix="bench-devstack-"))
    stack = Stack(home, profile=None)
    try:
        took = command_seconds([sys.executable, "-m", "carbon_sdk", "dev", "up"], _env(home))
        states = {s.name: s.state for s in stack.status()}
        assert states == {"postgres": State.RUNNING, "s3": State.RUNNING}, states
        return took
    finally:
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


def baseline_run() -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-manual-", dir="/tmp"))
    pids_file = work / "pids.json"
    try:
        took = command_seconds([sys.executable, __file__, "manual", str(work)])
        assert len(json.loads(pids_file.read_text())) == 2, "manual start failed"
        return took
    finally:
        pids = json.loads(pids_file.read_text()) if pids_file.exists() else []
        for pid in pids:
            process.stop(process.ProcessHandle(pid, pid, None), signal.SIGINT)
        shutil.rmtree(work, ignore_errors=True)


def manual(work: Path) -> None:
    """The baseline: PostgreSQL, then SeaweedFS, each started and provisioned by hand."""
    import urllib.request

    import boto3
    from botocore.config import Config

    root = os.geteuid() == 0
    as_pg = {"user": "postgres", "group": "postgres", "extra_groups": []} if root else {}
    if root:
        shutil.chown(work, "postgres", "postgres")
    pg_bin, password = find_bin_dir(), "benchpassword"
    ports = allocate(["pg", "master", "volume", "filer", "s3", "admin"])
    (work / "pw").write_text(password)
    if root:
        shutil.chown(work / "pw", "postgres", "postgres")
    subprocess.run(
        [pg_bin / "initdb", "-D", work / "data", "-U", "carbon", f"--pwfile={work / 'pw'}",
         "--auth=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, cwd=work, **as_pg,
    )  # fmt: skip
    pg = subprocess.Popen(
        [pg_bin / "postgres", "-D", work / "data", "-c", "listen_addresses=127.0.0.1",
         "-p", str(ports["pg"]), "-k", work, "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        cwd=work, **as_pg,
    )  # fmt: skip
    pids = [pg.pid]
    (work / "pids.json").write_text(json.dumps(pids))
    pg_ready = [pg_bin / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(ports["pg"])]
    while subprocess.run(pg_ready, check=False).returncode != 0:
        time.sleep(0.05)
    psql = [pg_bin / "psql", "-h", "127.0.0.1", "-p", str(ports["pg"]), "-U", "carbon", "-d",
            "postgres"]  # fmt: skip
    for db in DATABASES:
        subprocess.run(
            [*psql, "-c", f"CREATE DATABASE {db}"],
            check=True, capture_output=True, env={**os.environ, "PGPASSWORD": password},
        )  # fmt: skip
    (work / "weed").mkdir()
    (work / "s3.json").write_text(json.dumps({"identities": [{"name": "a", "credentials": [
        {"accessKey": "AK", "secretKey": "SK"}], "actions": ["Admin"]}]}))  # fmt: skip
    flags = [f"-{c}.port={ports[c]}" for c in ("master", "volume", "filer", "s3", "admin")]
    flags += [f"-{c}.port.grpc={ports[c] + GRPC_OFFSET}" for c in ("master", "volume", "filer",
                                                                    "s3", "admin")]  # fmt: skip
    weed = subprocess.Popen(
        [find_weed(), "mini", f"-dir={work / 'weed'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         "-master.telemetry=false", f"-s3.config={work / 's3.json'}", "-s3.port.iceberg=0",
         "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    pids.append(weed.pid)
    (work / "pids.json").write_text(json.dumps(pids))
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ports['s3']}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{ports['s3']}", aws_access_key_id="AK",
        aws_secret_access_key="SK", region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)


def main() -> None:
    subject, baseline = interleaved_medians(subject_run, baseline_run, N)
    record(
        "devstack",
        "carbon-sdk dev up (postgres + s3, cold)",
        subject,
        "same servers by hand with subprocess, sequential",
        baseline,
        N,
        f"target < 5 s; {'met' if subject < 5 else 'MISSED'}",
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "manual":
        manual(Path(sys.argv[2]))
    else:
        main()
