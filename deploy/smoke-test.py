#!/usr/bin/env python3
"""Smoke test of the container image: three containers form a cluster, serve the Kinesis API,
and keep serving it with one of them killed.

    deploy/smoke-test.py [IMAGE]         IMAGE defaults to localhost/streamd:<workspace version>

Each container runs on a private podman network under its own name, which it advertises to the
others (as a StatefulSet pod advertises its stable DNS name). Records are written through one
node and read through another; a fourth container joins the running cluster (--join), is
stopped with SIGTERM and restarted on its data; then one of the first three gets SIGKILL and the
rest must still serve every acknowledged record and accept new ones.

Exit status: 0 passed, 1 failed, 77 skipped (podman missing or unable to run a container here;
the reason is printed). It never passes without having run the cluster.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

SKIP = 77
ROOT = pathlib.Path(__file__).resolve().parent.parent
PREFIX = f"streamd-smoke-{os.getpid()}"
NETWORK = PREFIX
NODES = [1, 2, 3]
# Joins the running cluster, as a pod added by a scale-up does.
JOINER = 4
GRPC = 50051
# The machine may be shared with builds: generous deadlines, polled, never slept through.
READY_DEADLINE = 180.0
OP_DEADLINE = 90.0
RECORDS = 50


class Skip(Exception):
    pass


def log(msg: str) -> None:
    print(f"smoke-test: {msg}", flush=True)


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ulimits() -> list[str]:
    """Limits a container here may have. podman asks for more open files and processes than a
    sandboxed runner's hard limits allow, and runc then fails to start the container, so both
    are pinned low."""
    import resource

    # Processes count threads; a node runs a few dozen. Sandboxes have refused limits below
    # their own reported hard limit, so stay well under it.
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    nproc = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    return ["--ulimit", "nofile=1024:1024", "--ulimit", f"nproc={nproc}:{nproc}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_image() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', text, re.M)
    return f"localhost/streamd:{version.group(1) if version else 'dev'}"


def wait_until(what: str, deadline: float, check):
    """Polls `check` until it returns a true value or the deadline passes."""
    end = time.monotonic() + deadline
    last = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - each failed poll is reported if the wait fails
            last = e
        if time.monotonic() >= end:
            raise TimeoutError(f"timed out after {deadline:.0f}s waiting for {what}; last error: {last}")
        time.sleep(0.5)


def preflight(image: str) -> None:
    """Raises Skip when this machine cannot run containers at all; a broken image fails later."""
    if shutil.which("podman") is None:
        raise Skip("podman is not installed (Debian: apt-get install podman runc)")
    if shutil.which("runc") is None:
        raise Skip("runc is not installed (Debian: apt-get install runc)")
    if podman("image", "exists", image, check=False).returncode != 0:
        raise RuntimeError(f"image {image} not found: build it with deploy/build-image.sh")
    # Exit 125 is podman's own failure (runtime, cgroups, namespaces): the environment, not us.
    proc = podman(
        "run", "--rm", "--runtime", "runc", *ulimits(), "--network", "none",
        image, "--version", check=False,
    )
    if proc.returncode == 125:
        raise Skip(f"podman cannot run a container here: {proc.stderr.strip()[-500:]}")
    if proc.returncode != 0 or "streamd" not in proc.stdout:
        raise RuntimeError(f"streamd --version in the image failed ({proc.returncode}): {proc.stderr.strip()}")
    proc = podman("network", "create", NETWORK, check=False)
    if proc.returncode != 0:
        raise Skip(f"podman cannot create a network here: {proc.stderr.strip()[-500:]}")


def start_node(image: str, node: int, ports: dict) -> None:
    name = f"{PREFIX}-{node}"
    if node in NODES:
        cluster = ["--initial-cluster", ",".join(f"{n}={PREFIX}-{n}:{GRPC}" for n in NODES)]
    else:
        cluster = ["--join", ",".join(f"{PREFIX}-{n}:{GRPC}" for n in NODES)]
    podman(
        "run", "-d", "--name", name, "--hostname", name,
        "--network", NETWORK, "--runtime", "runc", *ulimits(),
        # As the Helm chart sets it: streamctl run inside the container talks to its node.
        "--env", f"STREAMCTL_ENDPOINT=127.0.0.1:{GRPC}",
        "-p", f"127.0.0.1:{ports['kinesis']}:4567", "-p", f"127.0.0.1:{ports['admin']}:9090",
        image,
        "--node-id", str(node),
        "--data-dir", "/var/lib/streamd",
        "--grpc-addr", f"0.0.0.0:{GRPC}",
        "--advertise-addr", f"{name}:{GRPC}",
        "--kinesis-addr", "0.0.0.0:4567",
        "--admin-addr", "0.0.0.0:9090",
        *cluster,
        "--log-format", "text",
    )


def ready(admin_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=3) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def cluster_status(node: int) -> dict:
    """`streamctl cluster status` run inside a container, as `kubectl exec` runs it in a pod."""
    proc = podman("exec", f"{PREFIX}-{node}", "streamctl", "--output", "json", "cluster", "status")
    return json.loads(proc.stdout)


def kinesis(port: int):
    return boto3.client(
        "kinesis",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="smoke",
        aws_secret_access_key="smoke",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20),
    )


def read_all(client, stream: str) -> list[bytes]:
    shards = client.list_shards(StreamName=stream)["Shards"]
    out = []
    for shard in shards:
        it = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = client.get_records(ShardIterator=it, Limit=1000)
            out.extend(r["Data"] for r in page["Records"])
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            it = page.get("NextShardIterator")
    return out


def run(image: str) -> None:
    preflight(image)
    ports = {n: {"kinesis": free_port(), "admin": free_port()} for n in [*NODES, JOINER]}
    for n in NODES:
        start_node(image, n, ports[n])
    log(f"started {len(NODES)} containers of {image} on network {NETWORK}")
    started = time.monotonic()
    for n in NODES:
        wait_until(f"node {n} /readyz", READY_DEADLINE, lambda n=n: ready(ports[n]["admin"]))
    log(f"cluster formed, every node ready after {time.monotonic() - started:.1f}s")
    status = cluster_status(1)
    assert status["nodes_live"] == len(NODES), f"streamctl cluster status: {status}"
    assert sorted(n["address"] for n in status["nodes"]) == sorted(f"{PREFIX}-{n}:{GRPC}" for n in NODES), status
    log("streamctl in the image sees every node live at its advertised name")

    writer, reader = kinesis(ports[1]["kinesis"]), kinesis(ports[2]["kinesis"])
    stream = "smoke"
    wait_until("create-stream", OP_DEADLINE, lambda: writer.create_stream(StreamName=stream, ShardCount=2) or True)
    wait_until(
        "stream ACTIVE",
        OP_DEADLINE,
        lambda: reader.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE",
    )
    sent = [f"record-{i}".encode() for i in range(RECORDS)]
    for i, data in enumerate(sent):
        wait_until(f"put {i}", OP_DEADLINE, lambda d=data, i=i: writer.put_record(StreamName=stream, Data=d, PartitionKey=f"k{i}"))
    got = wait_until("all records readable", OP_DEADLINE, lambda: (lambda r: r if len(r) >= RECORDS else None)(read_all(reader, stream)))
    assert sorted(got) == sorted(sent), f"read back {len(got)} records, not the {RECORDS} written"
    log(f"wrote {RECORDS} records through node 1, read all of them through node 2")

    # A node listening on 0.0.0.0 joins under its advertised name, and a restart (SIGTERM, then
    # the same data) finds itself a member instead of joining again.
    start_node(image, JOINER, ports[JOINER])
    joiner = f"{PREFIX}-{JOINER}:{GRPC}"
    wait_until(
        "the fourth node to join under its name",
        OP_DEADLINE,
        lambda: any(n["id"] == JOINER and n["address"] == joiner and n["live"] for n in cluster_status(1)["nodes"]),
    )
    wait_until(f"node {JOINER} /readyz", READY_DEADLINE, lambda: ready(ports[JOINER]["admin"]))
    stopping = time.monotonic()
    podman("stop", "--time", "60", f"{PREFIX}-{JOINER}")
    stop_secs = time.monotonic() - stopping
    podman("start", f"{PREFIX}-{JOINER}")
    wait_until(f"node {JOINER} /readyz after a restart", READY_DEADLINE, lambda: ready(ports[JOINER]["admin"]))
    logs = podman("logs", f"{PREFIX}-{JOINER}").stdout + podman("logs", f"{PREFIX}-{JOINER}").stderr
    assert "already a member of the cluster" in logs, "the restarted node asked to join again"
    log(f"node {JOINER} joined as {joiner}, stopped on SIGTERM in {stop_secs:.1f}s, restarted as a member")

    victim = f"{PREFIX}-3"
    podman("kill", "--signal", "KILL", victim)
    log(f"killed {victim} (SIGKILL)")
    killed = time.monotonic()
    got = wait_until(
        "records readable with a node down",
        OP_DEADLINE,
        lambda: (lambda r: r if len(r) >= RECORDS else None)(read_all(reader, stream)),
    )
    assert sorted(got) == sorted(sent), f"after the kill: {len(got)} records, not {RECORDS}"
    extra = b"after-the-kill"
    wait_until("a write with a node down", OP_DEADLINE, lambda: writer.put_record(StreamName=stream, Data=extra, PartitionKey="k"))
    got = wait_until(
        "the new record readable",
        OP_DEADLINE,
        lambda: (lambda r: r if extra in r else None)(read_all(reader, stream)),
    )
    assert len(got) == RECORDS + 1, f"expected {RECORDS + 1} records, read {len(got)}"
    # Four members, one killed.
    wait_until("streamctl to see the killed node down", OP_DEADLINE, lambda: cluster_status(1)["nodes_live"] == len(NODES))
    log(f"after the kill: all {RECORDS} records read, one more written and read, {time.monotonic() - killed:.1f}s")


def dump_logs() -> None:
    for n in [*NODES, JOINER]:
        proc = podman("logs", "--tail", "30", f"{PREFIX}-{n}", check=False)
        print(f"--- {PREFIX}-{n} (last 30 lines)\n{proc.stdout}{proc.stderr}", file=sys.stderr)


def cleanup() -> None:
    if shutil.which("podman") is None:
        return
    for n in [*NODES, JOINER]:
        podman("rm", "-f", "-v", "-t", "0", f"{PREFIX}-{n}", check=False)
    podman("network", "rm", "-f", NETWORK, check=False)


def main() -> int:
    image = sys.argv[1] if len(sys.argv) > 1 else default_image()
    started = time.monotonic()
    try:
        run(image)
    except Skip as e:
        log(f"SKIPPED: {e}")
        return SKIP
    except Exception as e:  # noqa: BLE001 - any failure is reported with the nodes' logs
        dump_logs()
        log(f"FAILED: {type(e).__name__}: {e}")
        return 1
    finally:
        cleanup()
    log(f"passed in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
