"""One request per error name, as boto3 and raw HTTP clients see them.

Reference: each action's "Errors" section in the Amazon Kinesis Data Streams API
Reference, the "Common Errors" page, and the AWS JSON 1.1 protocol (errors are
`{"__type": ..., "message": ...}` bodies with HTTP 400 for client faults).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

import helpers
from conftest import AUTH_KEY_ID, AUTH_SECRET, make_client
from helpers import ACCOUNT, JSON_CT, UUID_RE


def _expect(call, code: str, status: int = 400) -> ClientError:
    with pytest.raises(ClientError) as ei:
        call()
    e = ei.value
    assert helpers.error_code(e) == code, e.response
    assert helpers.http_status(e) == status, e.response
    rid = helpers.request_id_header(e)
    assert rid and UUID_RE.match(rid), f"x-amzn-RequestId missing or not a UUID: {rid!r}"
    return e


# ---------------------------------------------------------------------------
# Resource and argument errors


def test_resource_not_found_unknown_stream(kinesis):
    name = helpers.unique_name("missing")
    e = _expect(lambda: kinesis.describe_stream(StreamName=name), "ResourceNotFoundException")
    assert e.response["Error"]["Message"] == f"Stream {name} under account {ACCOUNT} not found."


@pytest.mark.parametrize("op", ["describe_stream_summary", "list_shards", "delete_stream"])
def test_resource_not_found_other_operations(kinesis, op):
    name = helpers.unique_name("missing")
    _expect(lambda: getattr(kinesis, op)(StreamName=name), "ResourceNotFoundException")


def test_resource_not_found_put_record(kinesis):
    name = helpers.unique_name("missing")
    _expect(lambda: kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k"), "ResourceNotFoundException")


def test_resource_in_use_create_existing(kinesis, stream):
    e = _expect(lambda: kinesis.create_stream(StreamName=stream, ShardCount=1), "ResourceInUseException")
    msg = e.response["Error"]["Message"]
    assert stream in msg and "already exists" in msg, msg


def test_invalid_argument_bad_retention(kinesis, stream):
    e = _expect(
        lambda: kinesis.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=8761),
        "InvalidArgumentException",
    )
    assert e.response["Error"]["Message"]


def test_zero_shards_rejected(kinesis_raw_params):
    """ShardCount is a PositiveIntegerObject (min 1). Kinesis rejects 0 at its input
    validation layer: ValidationException "1 validation error detected: Value '0' at
    'shardCount' failed to satisfy constraint: Member must have value greater than or
    equal to 1" (botocore validates min client-side; this client has that turned off)."""
    name = helpers.unique_name("zero")
    e = _expect(lambda: kinesis_raw_params.create_stream(StreamName=name, ShardCount=0), "ValidationException")
    assert "shardCount" in e.response["Error"]["Message"]
    _expect(lambda: kinesis_raw_params.describe_stream(StreamName=name), "ResourceNotFoundException")


def test_validation_stream_name_with_space(kinesis):
    e = _expect(lambda: kinesis.create_stream(StreamName="bad name", ShardCount=1), "ValidationException")
    msg = e.response["Error"]["Message"]
    assert "streamName" in msg and "[a-zA-Z0-9_.-]+" in msg, msg


def test_validation_stream_name_too_long(kinesis):
    name = "a" * 129
    e = _expect(lambda: kinesis.create_stream(StreamName=name, ShardCount=1), "ValidationException")
    msg = e.response["Error"]["Message"]
    assert "streamName" in msg and "128" in msg, msg


def test_validation_stream_name_of_128_chars_is_fine(kinesis):
    name = (helpers.unique_name("max") + "x" * 128)[:128]
    kinesis.create_stream(StreamName=name, ShardCount=1)
    helpers.wait_active(kinesis, name)


def test_validation_bogus_shard_iterator_type(kinesis, stream):
    e = _expect(
        lambda: kinesis.get_shard_iterator(
            StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="BOGUS"
        ),
        "ValidationException",
    )
    msg = e.response["Error"]["Message"]
    assert "shardIteratorType" in msg and "enum" in msg, msg


def test_validation_put_records_over_500_entries(kinesis, stream):
    """Records is a list of 1..500 entries (botocore checks only the minimum)."""
    records = [{"Data": b"x", "PartitionKey": "k"} for _ in range(501)]
    e = _expect(lambda: kinesis.put_records(StreamName=stream, Records=records), "ValidationException")
    assert "records" in e.response["Error"]["Message"], e.response["Error"]["Message"]


def test_validation_partition_key_too_long(kinesis, stream):
    e = _expect(
        lambda: kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="p" * 257), "ValidationException"
    )
    assert "partitionKey" in e.response["Error"]["Message"], e.response["Error"]["Message"]


def test_validation_get_records_limit_too_large(kinesis, stream):
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    e = _expect(lambda: kinesis.get_records(ShardIterator=it, Limit=10001), "ValidationException")
    assert "limit" in e.response["Error"]["Message"], e.response["Error"]["Message"]


def test_invalid_argument_explicit_hash_key_out_of_range(kinesis, stream):
    e = _expect(
        lambda: kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k", ExplicitHashKey=str(2**128)),
        "InvalidArgumentException",
    )
    assert "ExplicitHashKey" in e.response["Error"]["Message"]


def test_invalid_argument_sequence_number_required(kinesis, stream):
    e = _expect(
        lambda: kinesis.get_shard_iterator(
            StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="AT_SEQUENCE_NUMBER"
        ),
        "InvalidArgumentException",
    )
    assert "StartingSequenceNumber" in e.response["Error"]["Message"]


def test_invalid_argument_sequence_number_of_another_shard(kinesis, stream_name):
    """A sequence number encodes its shard: GetShardIterator with one from shard 1 on shard 0
    is an InvalidArgumentException ("Invalid StartingSequenceNumber. It encodes
    shardId-000000000001, while it was used in a call to a shard with shardId-000000000000")."""
    d = helpers.create_stream(kinesis, stream_name, shard_count=2)
    other = d["Shards"][1]
    put = kinesis.put_record(StreamName=stream_name, Data=b"x", PartitionKey="k",
                             ExplicitHashKey=other["HashKeyRange"]["StartingHashKey"])
    assert put["ShardId"] == other["ShardId"]
    _expect(
        lambda: kinesis.get_shard_iterator(
            StreamName=stream_name, ShardId="shardId-000000000000", ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=put["SequenceNumber"],
        ),
        "InvalidArgumentException",
    )


def test_resource_not_found_unknown_shard(kinesis, stream):
    _expect(
        lambda: kinesis.get_shard_iterator(
            StreamName=stream, ShardId="shardId-000000000007", ShardIteratorType="LATEST"
        ),
        "ResourceNotFoundException",
    )


@pytest.mark.skip(
    reason="ExpiredIteratorException needs a shard iterator older than its 5-minute lifetime; "
    "iterators are opaque server tokens that cannot be back-dated from the client, and a "
    "5-minute wait does not fit this suite's time budget"
)
def test_expired_iterator():
    pass


def _saturate_shard(endpoint: str, stream: str, partition_key: str, stop: threading.Event,
                    deadline: float, errors: list) -> None:
    """Send the same pre-signed PutRecords of 500 records over one keep-alive connection
    until told to stop: cheap on the client, so batches reach the shard back to back."""
    body = json.dumps({
        "StreamName": stream,
        "Records": [{"Data": "c2F0", "PartitionKey": partition_key} for _ in range(500)],
    }).encode()
    headers = helpers.sign_headers(endpoint, "PutRecords", body, helpers.KEY_ID, helpers.SECRET)
    u = urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            conn.request("POST", "/", body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors.append(f"saturating PutRecords answered {r.status}")
                return
    except Exception as e:  # surfaced by the test
        errors.append(repr(e))
    finally:
        conn.close()


def test_provisioned_throughput_exceeded_put_record(streamd, kinesis, stream):
    """While PutRecords batches keep the shard above its 1,000 records/s, PutRecord calls to
    the same shard must be refused with ProvisionedThroughputExceededException (HTTP 400):
    the write quota is per shard, whichever API the records come through."""
    stop = threading.Event()
    deadline = time.monotonic() + 15
    errors: list = []
    threads = [
        threading.Thread(target=_saturate_shard, args=(streamd.endpoint, stream, "hot", stop, deadline, errors),
                         daemon=True)
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    refused = None
    calls = 0
    try:
        time.sleep(0.05)
        while time.monotonic() < deadline and refused is None and not errors:
            calls += 1
            try:
                kinesis.put_record(StreamName=stream, Data=f"single-{calls}".encode(), PartitionKey="hot")
            except ClientError as e:
                refused = e
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    assert refused is not None, (
        f"{calls} PutRecord calls all succeeded while PutRecords kept the shard over 1,000 records/s"
    )
    assert helpers.error_code(refused) == "ProvisionedThroughputExceededException", refused.response
    assert helpers.http_status(refused) == 400
    msg = refused.response["Error"]["Message"]
    assert msg.lower().startswith("rate exceeded for shard"), msg
    assert helpers.request_id_header(refused)


def test_provisioned_throughput_exceeded_message_names_shard_stream_account(kinesis, stream):
    """PutRecordsResultEntry.ErrorMessage: "An ErrorCode value of
    ProvisionedThroughputExceededException has an error message that includes the account
    ID, stream name, and shard ID" (API Reference, PutRecordsResultEntry)."""
    sent = helpers.throttle_shard(kinesis, stream, partition_key="hot", tag="msg")
    failed = [r for _, resp in sent for r in resp["Records"] if "ErrorCode" in r]
    assert failed, "no entry was throttled"
    msg = failed[0]["ErrorMessage"]
    for part in (ACCOUNT, stream, "shardId-000000000000"):
        assert part in msg, f"{part!r} missing from ErrorMessage {msg!r}"


def test_invalid_argument_tampered_shard_iterator(kinesis, stream):
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert kinesis.get_records(ShardIterator=it)["Records"] == []
    mid = len(it) // 2
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for flip in (alphabet[(alphabet.find(it[mid]) + 1) % len(alphabet)],
                 alphabet[(alphabet.find(it[mid]) + 7) % len(alphabet)]):
        tampered = it[:mid] + flip + it[mid + 1:]
        assert tampered != it
        _expect(lambda: kinesis.get_records(ShardIterator=tampered), "InvalidArgumentException")


def test_invalid_argument_garbage_shard_iterator(kinesis):
    _expect(lambda: kinesis.get_records(ShardIterator="AAAAAAAAAAAAAAAAAAAA"), "InvalidArgumentException")


# ---------------------------------------------------------------------------
# Protocol errors over raw HTTP


def test_unknown_operation(endpoint):
    r = helpers.raw_call(endpoint, "Bogus", b"{}")
    assert r.status == 400, r
    assert helpers.error_type_of(r.json()) == "UnknownOperationException"
    assert r.headers.get("content-type", "").startswith(JSON_CT)
    assert UUID_RE.match(r.headers.get("x-amzn-requestid", ""))


def test_unknown_operation_without_target(endpoint):
    r = helpers.raw_post(endpoint, b"{}", {"Content-Type": JSON_CT})
    assert r.status == 400, r
    assert helpers.error_type_of(r.json()) == "UnknownOperationException"


@pytest.mark.parametrize(
    "body",
    [b'{"StreamName": "x"', b'{"StreamName": 5}', b"hello", b'{"StreamName": ["x"]}'],
    ids=["truncated", "number-for-string", "not-json", "list-for-string"],
)
def test_serialization_exception(endpoint, body):
    r = helpers.raw_call(endpoint, "DescribeStream", body)
    assert r.status == 400, (r.status, r.text)
    assert helpers.error_type_of(r.json()) == "SerializationException", r.text
    assert UUID_RE.match(r.headers.get("x-amzn-requestid", ""))


def test_serialization_exception_wrong_type_put_record(endpoint, kinesis, stream):
    r = helpers.raw_json(endpoint, "PutRecord", {"StreamName": stream, "Data": "eA==", "PartitionKey": 7})
    assert r.status == 400, (r.status, r.text)
    assert helpers.error_type_of(r.json()) == "SerializationException", r.text


def _send_huge(endpoint: str, size: int) -> tuple[int | None, bytes]:
    """POST `size` bytes on a raw socket, tolerating the server closing early; return the
    status line's code (None if no HTTP response came back) and the raw response."""
    host, port = endpoint.rsplit("//", 1)[1].split(":")
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {JSON_CT}\r\n"
        f"X-Amz-Target: Kinesis_20131202.PutRecord\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    chunk = b'{"StreamName":"x","PartitionKey":"k","Data":"' + b"A" * (1 << 20)
    sock = socket.create_connection((host, int(port)), timeout=30)
    resp = b""
    try:
        sock.sendall(head)
        sent = 0
        try:
            while sent < size:
                piece = chunk[: min(len(chunk), size - sent)]
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not data:
                break
            resp += data
            if b"\r\n\r\n" in resp:
                break
    finally:
        sock.close()
    if not resp.startswith(b"HTTP/1."):
        return None, resp
    return int(resp.split(b" ", 2)[1]), resp


def test_oversized_body_refused_and_node_stays_healthy(streamd, kinesis):
    status, raw = _send_huge(streamd.endpoint, 20 * 1024 * 1024)
    assert status is not None, f"no HTTP response to a 20 MiB body (got {raw[:200]!r})"
    assert status in (400, 413), raw[:500]
    assert streamd.healthy(), "/healthz failed after the oversized request"
    assert kinesis.describe_limits()["ShardLimit"] > 0


# ---------------------------------------------------------------------------
# Request ids


def test_request_id_on_success_and_error(kinesis):
    ok = kinesis.describe_limits()
    rid = helpers.request_id_header(ok)
    assert rid and UUID_RE.match(rid), ok["ResponseMetadata"]
    assert ok["ResponseMetadata"]["RequestId"] == rid
    ok2 = kinesis.list_streams(Limit=1)
    assert helpers.request_id_header(ok2) != rid, "request ids are unique per request"
    e = _expect(lambda: kinesis.describe_stream(StreamName=helpers.unique_name("nope")), "ResourceNotFoundException")
    assert e.response["ResponseMetadata"]["RequestId"] == helpers.request_id_header(e)


# ---------------------------------------------------------------------------
# SigV4 on the node started with --kinesis-auth-keys AKIDTEST:secret123


def test_auth_correctly_signed_request_passes(streamd_auth):
    k = make_client(streamd_auth.endpoint)
    resp = k.list_streams()
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert UUID_RE.match(helpers.request_id_header(resp) or "")
    name = helpers.unique_name("signed")
    helpers.create_stream(k, name, shard_count=1)
    k.put_record(StreamName=name, Data=b"signed", PartitionKey="k")


def test_auth_raw_signed_request_passes(streamd_auth):
    payload = b"{}"
    headers = helpers.sign_headers(streamd_auth.endpoint, "ListStreams", payload, AUTH_KEY_ID, AUTH_SECRET)
    r = helpers.raw_post(streamd_auth.endpoint, payload, headers)
    assert r.status == 200, r.text
    assert "StreamNames" in r.json()


def test_auth_wrong_secret(streamd_auth):
    k = make_client(streamd_auth.endpoint, secret="not-the-secret")
    e = _expect(lambda: k.list_streams(), "InvalidSignatureException")
    assert "signature we calculated does not match" in e.response["Error"]["Message"]


def test_auth_stale_date(streamd_auth):
    payload = b"{}"
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)
    headers = helpers.sign_headers(streamd_auth.endpoint, "ListStreams", payload, AUTH_KEY_ID, AUTH_SECRET, when=when)
    assert headers["X-Amz-Date"] == when.strftime("%Y%m%dT%H%M%SZ")
    r = helpers.raw_post(streamd_auth.endpoint, payload, headers)
    assert r.status == 400, (r.status, r.text)
    body = r.json()
    assert helpers.error_type_of(body) == "InvalidSignatureException", body
    assert body.get("message", body.get("Message", "")).startswith("Signature expired"), body
    assert UUID_RE.match(r.headers.get("x-amzn-requestid", ""))


def test_auth_tampered_body(streamd_auth):
    payload = json.dumps({"Limit": 1}).encode()
    headers = helpers.sign_headers(streamd_auth.endpoint, "ListStreams", payload, AUTH_KEY_ID, AUTH_SECRET)
    tampered = json.dumps({"Limit": 2}).encode()
    assert len(tampered) == len(payload)
    r = helpers.raw_post(streamd_auth.endpoint, tampered, headers)
    assert r.status == 400, (r.status, r.text)
    assert helpers.error_type_of(r.json()) == "InvalidSignatureException", r.text


def test_auth_unknown_access_key(streamd_auth):
    k = make_client(streamd_auth.endpoint, key="AKIDUNKNOWN", secret=AUTH_SECRET)
    e = _expect(lambda: k.list_streams(), "UnrecognizedClientException")
    assert e.response["Error"]["Message"] == "The security token included in the request is invalid."


def test_auth_missing_authorization(streamd_auth):
    r = helpers.raw_json(streamd_auth.endpoint, "ListStreams", {}, sign=False)
    assert r.status == 400, (r.status, r.text)
    body = r.json()
    assert helpers.error_type_of(body) == "MissingAuthenticationTokenException", body
    assert body.get("message") == "Missing Authentication Token", body
    assert UUID_RE.match(r.headers.get("x-amzn-requestid", ""))


def test_auth_garbage_authorization(streamd_auth):
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    r = helpers.raw_json(
        streamd_auth.endpoint, "ListStreams", {},
        extra_headers={"Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": stamp}, sign=False,
    )
    assert r.status == 400, (r.status, r.text)
    body = r.json()
    assert helpers.error_type_of(body) == "IncompleteSignatureException", body
    assert body.get("message"), body


def test_unsigned_request_accepted_when_auth_is_off(endpoint):
    """The main node runs without --kinesis-auth-keys: signatures are not required."""
    r = helpers.raw_json(endpoint, "ListStreams", {"Limit": 1}, sign=False)
    assert r.status == 200, (r.status, r.text)
    assert "StreamNames" in r.json()


def test_provisioned_throughput_exceeded_get_records(kinesis, stream):
    """More than five GetRecords calls a second on one shard are refused, as Kinesis does."""
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            for _ in range(10):
                it = kinesis.get_records(ShardIterator=it)["NextShardIterator"]
        except ClientError as e:
            assert helpers.error_code(e) == "ProvisionedThroughputExceededException", e.response
            msg = e.response["Error"]["Message"]
            assert "shardId-000000000000" in msg and stream in msg, msg
            return
    pytest.fail("ten GetRecords calls in a row were never refused for throughput")
