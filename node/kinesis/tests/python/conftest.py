"""Fixtures: real streamd processes on loopback and real boto3 clients against them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import helpers

AUTH_KEY_ID = helpers.KEY_ID
AUTH_SECRET = helpers.SECRET
READY_TIMEOUT_S = float(os.environ.get("STREAMD_READY_TIMEOUT", "60"))


def streamd_binary() -> Path:
    explicit = os.environ.get("STREAMD_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "release" / "streamd"
    # The workspace's own target dir, four levels up from this file.
    return Path(__file__).resolve().parents[4] / "target" / "release" / "streamd"


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Streamd:
    """One streamd node forming a one-node cluster in its own temporary directory."""

    def __init__(self, label: str, extra_args: list[str]):
        self.label = label
        self.extra_args = extra_args
        self.dir = Path(tempfile.mkdtemp(prefix=f"streamd-{label}-"))
        self.log_path = self.dir / "streamd.log"
        grpc, kin, admin = _free_ports(3)
        self.grpc_port, self.kinesis_port, self.admin_port = grpc, kin, admin
        self.endpoint = f"http://127.0.0.1:{kin}"
        self.admin = f"http://127.0.0.1:{admin}"
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def start(self) -> None:
        binary = streamd_binary()
        if not binary.exists():
            raise RuntimeError(
                f"streamd binary not found at {binary}; build it with "
                "`cargo build --release -p streamd` or set STREAMD_BIN"
            )
        args = [
            str(binary),
            "--node-id", "1",
            "--data-dir", str(self.dir / "data"),
            "--grpc-addr", f"127.0.0.1:{self.grpc_port}",
            "--kinesis-addr", f"127.0.0.1:{self.kinesis_port}",
            "--admin-addr", f"127.0.0.1:{self.admin_port}",
            *self.extra_args,
        ]
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(("$ " + " ".join(args) + "\n").encode())
        self._log_file.flush()
        env = dict(os.environ)
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(
            args, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.dir, env=env,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"streamd ({self.label}) exited with {self.proc.returncode} before it was ready\n"
                    + self.log_tail(200)
                )
            try:
                with urllib.request.urlopen(self.admin + "/readyz", timeout=2) as r:
                    if r.status == 200 and self._kinesis_port_open():
                        return
                    last = f"/readyz {r.status}"
            except urllib.error.HTTPError as e:
                last = f"/readyz {e.code}"
            except OSError as e:
                last = f"/readyz {e}"
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"streamd ({self.label}) not ready within {READY_TIMEOUT_S}s ({last})\n" + self.log_tail(200)
        )

    def _kinesis_port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.kinesis_port), timeout=1):
                return True
        except OSError:
            return False

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.admin + "/healthz", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int, max_lines: int = 80) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                lines = f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-max_lines:])

    def log_tail(self, max_lines: int = 100) -> str:
        return f"--- {self.log_path} (last {max_lines} lines) ---\n" + self.log_since(0, max_lines)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class ExternalNode:
    """A node someone else runs (STREAMD_KINESIS_ENDPOINT): nothing to start or stop."""

    def __init__(self, label: str, endpoint: str, admin: str | None):
        self.label = label
        self.endpoint = endpoint.rstrip("/")
        self.admin = admin.rstrip("/") if admin else None
        self.log_path = None

    def healthy(self) -> bool:
        if not self.admin:
            return True
        try:
            with urllib.request.urlopen(self.admin + "/healthz", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False


_RUNNING: list[Streamd] = []


def _start(label: str, extra: list[str]) -> Streamd:
    node = Streamd(label, extra)
    node.start()
    _RUNNING.append(node)
    return node


def _finish(request, node: Streamd) -> None:
    node.stop()
    if node in _RUNNING:
        _RUNNING.remove(node)
    failed = request.session.testsfailed > 0
    if failed:
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line("")
            tr.write_line(f"streamd ({node.label}) log kept at {node.log_path}")
            tr.write_line(node.log_tail(60))
    elif not os.environ.get("STREAMD_KEEP_DATA"):
        shutil.rmtree(node.dir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item._streamd_log_offsets = {id(n): n.log_size() for n in _RUNNING}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        offsets = getattr(item, "_streamd_log_offsets", {})
        for n in _RUNNING:
            text = n.log_since(offsets.get(id(n), 0), max_lines=60)
            if text.strip():
                rep.sections.append((f"streamd ({n.label}) log during this test", text))


@pytest.fixture(scope="session")
def streamd(request):
    """The main node: Kinesis per-shard limits ON (the default), SigV4 checks OFF."""
    external = os.environ.get("STREAMD_KINESIS_ENDPOINT")
    if external:
        yield ExternalNode("main", external, os.environ.get("STREAMD_ADMIN_URL"))
        return
    node = _start("main", [])
    yield node
    _finish(request, node)


@pytest.fixture(scope="session")
def streamd_auth(request):
    """A node that verifies SigV4 signatures against AKIDTEST:secret123."""
    if os.environ.get("STREAMD_KINESIS_ENDPOINT"):
        external = os.environ.get("STREAMD_AUTH_KINESIS_ENDPOINT")
        if not external:
            pytest.skip("STREAMD_KINESIS_ENDPOINT is set but STREAMD_AUTH_KINESIS_ENDPOINT is not")
        yield ExternalNode("auth", external, None)
        return
    node = _start("auth", ["--kinesis-auth-keys", f"{AUTH_KEY_ID}:{AUTH_SECRET}"])
    yield node
    _finish(request, node)


@pytest.fixture(scope="session")
def endpoint(streamd) -> str:
    return streamd.endpoint


def make_client(endpoint: str, key: str = AUTH_KEY_ID, secret: str = AUTH_SECRET, validate: bool = True):
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=helpers.REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(
            retries={"max_attempts": 1},
            parameter_validation=validate,
            connect_timeout=10,
            read_timeout=60,
        ),
    )


@pytest.fixture(scope="session")
def kinesis(streamd):
    """boto3 Kinesis client, no retries so every error surfaces."""
    return make_client(streamd.endpoint)


@pytest.fixture(scope="session")
def kinesis_raw_params(streamd):
    """Like `kinesis`, but without botocore's client-side parameter validation, so
    out-of-range values reach the server."""
    return make_client(streamd.endpoint, validate=False)


@pytest.fixture
def stream_name(request) -> str:
    return helpers.unique_name(request.node.name.split("[")[0][:40])


@pytest.fixture
def stream(kinesis, stream_name) -> str:
    """An ACTIVE one-shard stream, created for this test."""
    helpers.create_stream(kinesis, stream_name, shard_count=1)
    return stream_name
