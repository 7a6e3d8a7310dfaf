"""The AWS CLI (`aws kinesis ...`) end to end against streamd."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import helpers
from conftest import AUTH_KEY_ID, AUTH_SECRET

AWS = shutil.which("aws")
pytestmark = pytest.mark.skipif(AWS is None, reason="the AWS CLI (`aws`) is not installed")


@pytest.fixture(scope="module")
def cli_env():
    d = tempfile.mkdtemp(prefix="streamd-awscli-")
    cfg = os.path.join(d, "config")
    creds = os.path.join(d, "credentials")
    for p in (cfg, creds):
        open(p, "w").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": AUTH_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AUTH_SECRET,
        "AWS_DEFAULT_REGION": helpers.REGION,
        "AWS_CONFIG_FILE": cfg,
        "AWS_SHARED_CREDENTIALS_FILE": creds,
        "AWS_PAGER": "",
        "AWS_RETRY_MODE": "standard",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    yield env
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def cli_is_v2(cli_env) -> bool:
    out = subprocess.run([AWS, "--version"], env=cli_env, capture_output=True, text=True, timeout=60)
    return (out.stdout + out.stderr).strip().startswith("aws-cli/2")


def aws(env, endpoint: str, *args: str, timeout: float = 120) -> dict | None:
    cmd = [AWS, "--endpoint-url", endpoint, "--region", helpers.REGION, "--output", "json", "kinesis", *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd[1:])} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return json.loads(p.stdout) if p.stdout.strip() else None


def test_cli_stream_lifecycle(streamd, cli_env, cli_is_v2):
    ep = streamd.endpoint
    name = helpers.unique_name("cli")

    assert aws(cli_env, ep, "create-stream", "--stream-name", name, "--shard-count", "1") is None
    aws(cli_env, ep, "wait", "stream-exists", "--stream-name", name, timeout=200)

    desc = aws(cli_env, ep, "describe-stream", "--stream-name", name)["StreamDescription"]
    assert desc["StreamStatus"] == "ACTIVE"
    assert desc["StreamARN"] == helpers.stream_arn(name)

    payload = "hello from the aws cli"
    # CLI v2 reads blob arguments as base64 unless told otherwise; v1 sends them raw.
    fmt = ["--cli-binary-format", "raw-in-base64-out"] if cli_is_v2 else []
    put = aws(cli_env, ep, "put-record", "--stream-name", name, "--data", payload, "--partition-key", "pk", *fmt)
    assert put["ShardId"] == "shardId-000000000000"
    assert put["SequenceNumber"].isdigit()

    shards = aws(cli_env, ep, "list-shards", "--stream-name", name)
    assert [s["ShardId"] for s in shards["Shards"]] == ["shardId-000000000000"]
    assert "NextToken" not in shards

    it = aws(cli_env, ep, "get-shard-iterator", "--stream-name", name, "--shard-id", "shardId-000000000000",
             "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    records: list = []
    deadline = time.monotonic() + 60
    while not records and it and time.monotonic() < deadline:
        got = aws(cli_env, ep, "get-records", "--shard-iterator", it)
        records = got["Records"]
        it = got.get("NextShardIterator")
        assert isinstance(got.get("MillisBehindLatest"), int)
    assert len(records) == 1
    assert base64.b64decode(records[0]["Data"]) == payload.encode()
    assert records[0]["SequenceNumber"] == put["SequenceNumber"]
    assert records[0]["PartitionKey"] == "pk"

    listed = aws(cli_env, ep, "list-streams")
    assert name in listed["StreamNames"]

    assert aws(cli_env, ep, "delete-stream", "--stream-name", name) is None
    aws(cli_env, ep, "wait", "stream-not-exists", "--stream-name", name, timeout=200)


def test_cli_error_exit_code(streamd, cli_env):
    name = helpers.unique_name("cli-missing")
    cmd = [AWS, "--endpoint-url", streamd.endpoint, "--region", helpers.REGION, "--output", "json",
           "kinesis", "describe-stream", "--stream-name", name]
    p = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "ResourceNotFoundException" in p.stderr, p.stderr
