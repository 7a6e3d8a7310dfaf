"""The CBOR wire format (Content-Type application/x-amz-cbor-1.1), as the AWS SDK for
Java speaks it to Kinesis: blobs are CBOR byte strings and timestamps are CBOR tag 1
around an integer count of epoch MILLISECONDS (not seconds)."""

from __future__ import annotations

import datetime as dt
import time

import cbor2

import helpers
from helpers import CBOR_CT, UUID_RE, Tag


def cbor_call(endpoint: str, operation: str, payload: dict) -> helpers.RawResponse:
    return helpers.raw_call(endpoint, operation, cbor2.dumps(payload), CBOR_CT)


def _ok(r: helpers.RawResponse) -> dict:
    assert r.status == 200, (r.status, r.headers, r.body[:300])
    assert r.headers.get("content-type", "").startswith(CBOR_CT), r.headers
    assert UUID_RE.match(r.headers.get("x-amzn-requestid", ""))
    body = r.cbor()
    assert isinstance(body, dict), body
    return body


def _epoch_ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def test_cbor_put_record_and_read_back(endpoint, kinesis, stream):
    blobs = [b"\x00\x01\x02binary\xff", bytes(range(256)), b"\x00"]
    seqs = []
    for i, blob in enumerate(blobs):
        body = _ok(cbor_call(endpoint, "PutRecord", {"StreamName": stream, "Data": blob, "PartitionKey": f"k{i}"}))
        assert body["ShardId"] == "shardId-000000000000"
        assert body["SequenceNumber"].isdigit()
        seqs.append(body["SequenceNumber"])

    # The JSON side sees the same bytes.
    got = helpers.read_from(kinesis, stream, "shardId-000000000000", want=3)
    assert [r["Data"] for r in got] == blobs
    assert [r["SequenceNumber"] for r in got] == seqs


def test_cbor_at_timestamp_and_get_records(endpoint, kinesis, stream):
    _ok(cbor_call(endpoint, "PutRecord", {"StreamName": stream, "Data": b"before", "PartitionKey": "k"}))
    time.sleep(0.05)
    t = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.05)
    put = _ok(cbor_call(endpoint, "PutRecord", {"StreamName": stream, "Data": b"\xde\xad\xbe\xef", "PartitionKey": "k"}))

    it_body = _ok(cbor_call(endpoint, "GetShardIterator", {
        "StreamName": stream,
        "ShardId": "shardId-000000000000",
        "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": cbor2.CBORTag(1, _epoch_ms(t)),
    }))
    it = it_body["ShardIterator"]
    assert isinstance(it, str) and it

    records: list = []
    deadline = time.monotonic() + 20
    last: dict = {}
    while not records and time.monotonic() < deadline:
        last = _ok(cbor_call(endpoint, "GetRecords", {"ShardIterator": it}))
        records = last["Records"]
        it = last.get("NextShardIterator", it)
        if not records:
            time.sleep(0.2)
    assert len(records) == 1, f"expected only the record after T, got {records!r}"
    rec = records[0]
    assert rec["Data"] == b"\xde\xad\xbe\xef" and isinstance(rec["Data"], bytes)
    assert rec["SequenceNumber"] == put["SequenceNumber"]
    assert rec["PartitionKey"] == "k"

    ts = rec["ApproximateArrivalTimestamp"]
    assert isinstance(ts, Tag) and ts.tag == 1, f"timestamp is not CBOR tag 1: {ts!r}"
    assert isinstance(ts.value, int), f"tag 1 must wrap an integer (epoch milliseconds), got {ts.value!r}"
    now_ms = int(time.time() * 1000)
    assert abs(now_ms - ts.value) < 120_000, f"{ts.value} is not epoch milliseconds near {now_ms}"
    assert ts.value >= _epoch_ms(t) - 1

    assert isinstance(last["MillisBehindLatest"], int)
    assert isinstance(last["NextShardIterator"], str)


def test_cbor_describe_stream_timestamp(endpoint, stream):
    body = _ok(cbor_call(endpoint, "DescribeStreamSummary", {"StreamName": stream}))
    s = body["StreamDescriptionSummary"]
    assert s["StreamName"] == stream
    assert s["OpenShardCount"] == 1
    ts = s["StreamCreationTimestamp"]
    assert isinstance(ts, Tag) and ts.tag == 1 and isinstance(ts.value, int), ts
    assert abs(int(time.time() * 1000) - ts.value) < 3_600_000


def test_cbor_error_unknown_stream(endpoint):
    name = helpers.unique_name("missing")
    r = cbor_call(endpoint, "DescribeStream", {"StreamName": name})
    assert r.status == 400, (r.status, r.body[:300])
    assert r.headers.get("content-type", "").startswith(CBOR_CT), r.headers
    assert UUID_RE.match(r.headers.get("x-amzn-requestid", ""))
    body = r.cbor()
    assert isinstance(body, dict), body
    assert helpers.error_type_of(body) == "ResourceNotFoundException", body
    assert body.get("message") == f"Stream {name} under account {helpers.ACCOUNT} not found.", body


def test_cbor_malformed_body(endpoint):
    r = helpers.raw_call(endpoint, "DescribeStream", b"\xbf\x6aStreamName", CBOR_CT)
    assert r.status == 400, (r.status, r.body[:300])
    assert r.headers.get("content-type", "").startswith(CBOR_CT), r.headers
    assert helpers.error_type_of(r.cbor()) == "SerializationException"
