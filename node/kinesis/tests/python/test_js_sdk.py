"""The AWS SDK for JavaScript v3 against the node: runs `../js/kinesis-sdk-test.mjs`.

The JS Kinesis client keeps its default request handler (NodeHttp2Handler), so against the
node's `http://` endpoint it speaks cleartext HTTP/2 with prior knowledge. The script creates a
stream, puts records (PutRecord, PutRecords), reads them back (GetShardIterator, GetRecords),
checks the bytes and deletes the stream.

Needs Node.js 20+ and the script's modules: `npm ci` in node/kinesis/tests/js. Skipped, with
the reason, when either is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent.parent / "js"
SCRIPT = JS_DIR / "kinesis-sdk-test.mjs"
SDK_MODULE = JS_DIR / "node_modules" / "@aws-sdk" / "client-kinesis"
# The script bounds itself (KINESIS_TEST_TIMEOUT_MS); the subprocess timeout is the backstop.
SCRIPT_TIMEOUT_MS = 90_000
SUBPROCESS_TIMEOUT_S = 120


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the JavaScript SDK test needs Node.js 20+")
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (subprocess.SubprocessError, OSError, ValueError) as e:
        pytest.skip(f"cannot tell the version of {node}: {e}")
    if major < 20:
        pytest.skip(f"{node} is {version}; the JavaScript SDK test needs Node.js 20+")
    if not SDK_MODULE.is_dir():
        pytest.skip(f"@aws-sdk/client-kinesis is not installed: run `npm ci` in {JS_DIR}")
    return node


def _output(proc_stdout: str | bytes | None, proc_stderr: str | bytes | None) -> str:
    def text(v: str | bytes | None) -> str:
        if v is None:
            return ""
        return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v

    return f"--- stdout ---\n{text(proc_stdout)}\n--- stderr ---\n{text(proc_stderr)}"


def test_js_sdk_v3_over_cleartext_http2(request):
    node = _node_or_skip()
    # Only now start (or reuse) the session's node: a skipped test starts nothing.
    endpoint = request.getfixturevalue("endpoint")
    env = dict(os.environ)
    env["KINESIS_ENDPOINT"] = endpoint
    env["KINESIS_TEST_TIMEOUT_MS"] = str(SCRIPT_TIMEOUT_MS)
    env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] = "true"
    try:
        proc = subprocess.run(
            [node, str(SCRIPT)],
            cwd=JS_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"{SCRIPT.name} did not exit within {SUBPROCESS_TIMEOUT_S}s against {endpoint}\n"
            + _output(e.stdout, e.stderr)
        )
    assert proc.returncode == 0, (
        f"{SCRIPT.name} exited with {proc.returncode} against {endpoint}\n"
        + _output(proc.stdout, proc.stderr)
    )
    assert "PASS" in proc.stdout, _output(proc.stdout, proc.stderr)
