#!/usr/bin/env python3
"""`make bench-scale`: thousands of shards on a local three-node cluster.

Starts `streamd dev --nodes 3 --shard-limits off`, creates --streams streams of --shards-per-stream
shards each through `streamctl stream create` (several calls at once), and reports:

  create     seconds until every stream is ACTIVE, and how many create calls failed
  idle CPU   CPU seconds each node used over --idle-secs once the cluster settled (and as a
             percentage of one core), read from /proc/<pid>/stat
  hibernate  how many groups each node parked (streamd_raft_groups_hibernating)
  wake       latency of single-record puts to shards of different streams after the idle period
             (each wakes a hibernating group), through `streamctl put`
  memory     resident size of each node (VmRSS) at the end

The figures go to stdout as a table and to --json.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from processes import http_get, poll, stop

CLK_TCK = os.sysconf("SC_CLK_TCK")


def node_pids():
    """Node id -> pid of the `streamd` processes `streamd dev` started."""
    out = subprocess.run(["pgrep", "-a", "streamd"], capture_output=True, text=True).stdout
    pids = {}
    for line in out.splitlines():
        m = re.match(r"(\d+) .*--node-id (\d+) ", line)
        if m:
            pids[int(m.group(2))] = int(m.group(1))
    return pids


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metric(port, name):
    for line in http_get(f"http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="target/release")
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--shards-per-stream", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=8, help="create calls at once")
    ap.add_argument("--idle-secs", type=int, default=30)
    ap.add_argument("--wake-puts", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the cluster's directory and log")
    args = ap.parse_args()

    streamd = os.path.join(args.bin_dir, "streamd")
    streamctl = os.path.join(args.bin_dir, "streamctl")
    work = tempfile.mkdtemp(prefix="streamd-scale-")
    log = open(os.path.join(work, "streamd.log"), "w")
    proc = subprocess.Popen([streamd, "dev", "--nodes", "3", "--shard-limits", "off"], cwd=work,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    result = {"streams": args.streams, "shards_per_stream": args.shards_per_stream}
    try:
        for i in range(3):
            poll(f"node {i + 1} ready", lambda i=i: http_get(f"http://127.0.0.1:{9090 + i}/readyz") is not None, 90)
        pids = node_pids()
        names = [f"scale-{i:03d}" for i in range(args.streams)]

        def create(name):
            r = subprocess.run([streamctl, "stream", "create", name, "--shards", str(args.shards_per_stream)],
                               capture_output=True, text=True, timeout=600)
            return name, r.returncode, r.stderr.strip()[-300:]

        t0 = time.monotonic()
        failed = []
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as ex:
            for name, rc, err in ex.map(create, names):
                if rc != 0:
                    failed.append((name, err))

        def all_active():
            out = subprocess.run([streamctl, "-o", "json", "stream", "list"], capture_output=True,
                                 text=True, timeout=60).stdout
            streams = json.loads(out)
            streams = streams.get("streams", streams) if isinstance(streams, dict) else streams
            active = [s for s in streams if (s.get("status") if isinstance(s, dict) else None) == "ACTIVE"]
            return len(active) >= args.streams - len(failed)

        poll("every stream ACTIVE", all_active, 900, every=1.0)
        result["create_secs"] = round(time.monotonic() - t0, 1)
        result["create_failed"] = len(failed)
        if failed:
            print(f"bench: {len(failed)} create calls failed, first: {failed[0]}", file=sys.stderr)

        # Settle: groups park once their logs stood still for a few seconds.
        time.sleep(10)
        before = {n: cpu_seconds(p) for n, p in pids.items()}
        time.sleep(args.idle_secs)
        after = {n: cpu_seconds(p) for n, p in pids.items()}
        result["idle_cpu_secs"] = {n: round(after[n] - before[n], 2) for n in pids}
        result["idle_core_pct"] = {n: round(100 * (after[n] - before[n]) / args.idle_secs, 1) for n in pids}
        result["hibernating"] = {n: metric(9089 + n, "streamd_raft_groups_hibernating") for n in pids}

        lat = []
        for i in range(args.wake_puts):
            name = names[(i * 7) % len(names)]
            t = time.monotonic()
            r = subprocess.run([streamctl, "put", name, "--key", f"wake-{i}"], input="x\n",
                               capture_output=True, text=True, timeout=60)
            # streamctl's own start-up (process, connection, describe) is in this figure too.
            lat.append((time.monotonic() - t) * 1000)
            if r.returncode != 0:
                print(f"bench: put to {name} failed: {r.stderr.strip()}", file=sys.stderr)
        lat.sort()
        result["wake_put_ms"] = {"p50": round(lat[len(lat) // 2], 1), "max": round(lat[-1], 1)}
        result["rss_mib"] = {n: round(rss_mib(p)) for n, p in pids.items()}
    finally:
        stop(proc, grace_s=60)
        log.close()
        if args.keep:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
