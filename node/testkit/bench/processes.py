"""What both benchmark scripts need to run local processes: polling with a deadline, HTTP
probes, and stopping a process group."""

import os
import signal
import subprocess
import time
import urllib.request


def poll(what, check, deadline_s, every=0.1):
    """Calls `check` until it returns a true value (returned) or the deadline passes (exit)."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            v = check()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        time.sleep(every)
    raise SystemExit(f"bench: {what} not reached within {deadline_s} s (last error: {last})")


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def http_ok(url):
    with urllib.request.urlopen(url, timeout=1) as r:
        return r.status == 200


def stop(proc, grace_s=20):
    """SIGTERM to the process group started with `start_new_session=True`, SIGKILL after grace."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
