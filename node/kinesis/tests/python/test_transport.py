"""One Kinesis port, three transports: HTTP/1.1, cleartext HTTP/2 with prior knowledge, and TLS
where ALPN picks HTTP/2 or HTTP/1.1. Checked with real clients: boto3 over TLS, curl for HTTP/2."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time

import boto3
import pytest
from botocore.config import Config

import conftest
import helpers

LIST = "Kinesis_20131202.ListStreams"


@pytest.fixture(scope="module")
def tls_node(request, tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    node = conftest._start("tls", ["--kinesis-tls-cert", str(cert), "--kinesis-tls-key", str(key)])
    yield node
    conftest._finish(request, node)


def _curl(args: list[str]) -> subprocess.CompletedProcess:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, text=True, timeout=30)


def _curl_supports_http2() -> bool:
    out = _curl(["--version"]).stdout
    return "HTTP2" in out


def test_alpn_offers_h2_and_http11(tls_node):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for wanted in (["h2", "http/1.1"], ["http/1.1"]):
        ctx.set_alpn_protocols(wanted)
        with socket.create_connection(("127.0.0.1", tls_node.kinesis_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == wanted[0]


def test_boto3_over_tls(tls_node):
    https = f"https://127.0.0.1:{tls_node.kinesis_port}"
    client = boto3.client(
        "kinesis", endpoint_url=https, region_name=helpers.REGION,
        aws_access_key_id=conftest.AUTH_KEY_ID, aws_secret_access_key=conftest.AUTH_SECRET,
        verify=False, config=Config(retries={"max_attempts": 1}),
    )
    name = helpers.unique_name("tls")
    helpers.create_stream(client, name, shard_count=1)
    put = client.put_record(StreamName=name, Data=b"over tls", PartitionKey="k")
    it = client.get_shard_iterator(StreamName=name, ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON")
    got = client.get_records(ShardIterator=it["ShardIterator"])
    assert [r["Data"] for r in got["Records"]] == [b"over tls"]
    client.delete_stream(StreamName=name)


def test_http2_over_tls(tls_node):
    if not _curl_supports_http2():
        pytest.skip("this curl has no HTTP/2 support")
    r = _curl(["-k", "--http2", "-i", f"https://127.0.0.1:{tls_node.kinesis_port}/",
               "-H", f"X-Amz-Target: {LIST}", "-H", "Content-Type: application/x-amz-json-1.1", "-d", "{}"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/2 200"), r.stdout
    assert "x-amzn-requestid" in r.stdout.lower()
    body = r.stdout[r.stdout.index("{"):]
    assert "StreamNames" in json.loads(body)


def test_cleartext_http2_prior_knowledge(tls_node, endpoint):
    if not _curl_supports_http2():
        pytest.skip("this curl has no HTTP/2 support")
    for url in (f"http://127.0.0.1:{tls_node.kinesis_port}/", endpoint + "/"):
        r = _curl(["--http2-prior-knowledge", "-i", url, "-H", f"X-Amz-Target: {LIST}",
                   "-H", "Content-Type: application/x-amz-json-1.1", "-d", "{}"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("HTTP/2 200"), r.stdout


def test_http11_still_served_beside_tls(tls_node):
    r = helpers.raw_json(f"http://127.0.0.1:{tls_node.kinesis_port}", "ListStreams", {})
    assert r.status == 200


def test_subscribe_to_shard_over_cleartext_http2(kinesis, endpoint):
    """SubscribeToShard's event stream over HTTP/2 (prior knowledge), read raw with curl."""
    if not _curl_supports_http2():
        pytest.skip("this curl has no HTTP/2 support")
    name = helpers.unique_name("h2sub")
    helpers.create_stream(kinesis, name, shard_count=1)
    kinesis.put_record(StreamName=name, Data=b"over-h2-event", PartitionKey="k")
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="h2")["Consumer"]["ConsumerARN"]
    deadline = time.monotonic() + 20
    while kinesis.describe_stream_consumer(ConsumerARN=consumer)["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, "consumer never became ACTIVE"
        time.sleep(0.1)
    body = json.dumps({
        "ConsumerARN": consumer,
        "ShardId": "shardId-000000000000",
        "StartingPosition": {"Type": "TRIM_HORIZON"},
    })
    # The subscription streams for minutes; curl's time limit ends it after the first events.
    r = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "3", "-i", endpoint + "/",
         "-H", "X-Amz-Target: Kinesis_20131202.SubscribeToShard",
         "-H", "Content-Type: application/x-amz-json-1.1", "-d", body],
        capture_output=True, timeout=30,
    )
    out = r.stdout
    assert out.startswith(b"HTTP/2 200"), out[:200]
    assert b"application/vnd.amazon.eventstream" in out
    first = out.find(b"initial-response")
    event = out.find(b"SubscribeToShardEvent")
    assert 0 <= first < event, out[:400]
    # Data is base64 inside the JSON event payload.
    assert b"b3Zlci1oMi1ldmVudA==" in out
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
