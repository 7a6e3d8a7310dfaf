"""The AWS JSON 1.1 wire format seen raw: timestamps are JSON numbers of epoch seconds
with at most a millisecond fraction and no exponent, blobs are base64 strings."""

from __future__ import annotations

import base64
import re
import time

import helpers
from helpers import JSON_CT, UUID_RE

# A JSON number as written after "Key": in the raw body.
_NUM_AFTER = r'"{key}"\s*:\s*(-?[0-9][0-9.eE+-]*)'
_EPOCH_SECONDS_MS = re.compile(r"^\d{10}(\.\d{1,3})?$")


def _raw_numbers(text: str, key: str) -> list[str]:
    return re.findall(_NUM_AFTER.format(key=key), text)


def _ok(r: helpers.RawResponse):
    assert r.status == 200, (r.status, r.text[:300])
    assert r.headers.get("content-type", "").startswith(JSON_CT), r.headers
    assert UUID_RE.match(r.headers.get("x-amzn-requestid", ""))
    return r.json()


def _raw_read(endpoint: str, it: str, want: int, deadline_s: float = 20) -> tuple[list, str]:
    """Raw GetRecords loop: (records, concatenated raw bodies that carried records)."""
    records: list = []
    text = ""
    deadline = time.monotonic() + deadline_s
    while len(records) < want and time.monotonic() < deadline:
        r = helpers.raw_json(endpoint, "GetRecords", {"ShardIterator": it})
        body = _ok(r)
        assert isinstance(body["MillisBehindLatest"], int)
        if body["Records"]:
            text += r.text
        records.extend(body["Records"])
        it = body.get("NextShardIterator", it)
        if not body["Records"]:
            time.sleep(0.2)
    return records, text


def _check_epoch(raw: str, near_s: float) -> None:
    assert "e" not in raw.lower(), f"timestamp in exponent notation: {raw}"
    assert _EPOCH_SECONDS_MS.match(raw), f"timestamp {raw} is not epoch seconds with a millisecond fraction"
    assert abs(float(raw) - time.time()) < near_s, f"timestamp {raw} is not near now"


def test_stream_creation_timestamp_is_plain_epoch_seconds(endpoint, stream):
    for op in ("DescribeStream", "DescribeStreamSummary"):
        r = helpers.raw_json(endpoint, op, {"StreamName": stream})
        _ok(r)
        raws = _raw_numbers(r.text, "StreamCreationTimestamp")
        assert len(raws) == 1, r.text
        _check_epoch(raws[0], near_s=3600)


def test_list_streams_summary_timestamps(endpoint, stream):
    r = helpers.raw_json(endpoint, "ListStreams", {"ExclusiveStartStreamName": stream[:-1], "Limit": 1})
    body = _ok(r)
    assert body["StreamNames"] == [stream]
    raws = _raw_numbers(r.text, "StreamCreationTimestamp")
    assert len(raws) == 1, r.text
    _check_epoch(raws[0], near_s=3600)


def test_arrival_timestamp_and_base64_blobs(endpoint, stream):
    payloads = [b"\x00\xffjson-wire\x10", bytes(range(200))]
    for p in payloads:
        r = helpers.raw_json(endpoint, "PutRecord", {
            "StreamName": stream, "Data": base64.b64encode(p).decode(), "PartitionKey": "k",
        })
        body = _ok(r)
        assert body["ShardId"] == "shardId-000000000000"
        assert isinstance(body["SequenceNumber"], str)

    it = _ok(helpers.raw_json(endpoint, "GetShardIterator", {
        "StreamName": stream, "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON",
    }))["ShardIterator"]

    records, text = _raw_read(endpoint, it, want=len(payloads))
    assert len(records) == len(payloads)

    for rec, p in zip(records, payloads):
        assert isinstance(rec["Data"], str)
        assert base64.b64decode(rec["Data"], validate=True) == p
        assert rec["Data"] == base64.b64encode(p).decode(), "standard base64 with padding"
    raws = _raw_numbers(text, "ApproximateArrivalTimestamp")
    assert len(raws) == len(payloads), text
    for raw in raws:
        _check_epoch(raw, near_s=300)


def test_timestamp_input_accepts_epoch_seconds_with_fraction(endpoint, stream):
    r = helpers.raw_json(endpoint, "PutRecord", {"StreamName": stream, "Data": "YQ==", "PartitionKey": "k"})
    _ok(r)
    r = helpers.raw_json(endpoint, "GetShardIterator", {
        "StreamName": stream, "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": round(time.time() - 3600, 3),
    })
    it = _ok(r)["ShardIterator"]
    records, _ = _raw_read(endpoint, it, want=1)
    assert [base64.b64decode(x["Data"]) for x in records] == [b"a"]


def test_empty_success_body_is_json(endpoint, stream):
    r = helpers.raw_json(endpoint, "IncreaseStreamRetentionPeriod", {"StreamName": stream, "RetentionPeriodHours": 25})
    assert r.status == 200, r.text
    assert r.headers.get("content-type", "").startswith(JSON_CT)
    assert r.body in (b"", b"{}"), r.body


def test_error_body_shape(endpoint):
    name = helpers.unique_name("missing")
    r = helpers.raw_json(endpoint, "DescribeStream", {"StreamName": name})
    assert r.status == 400, r.text
    assert r.headers.get("content-type", "").startswith(JSON_CT), r.headers
    assert UUID_RE.match(r.headers.get("x-amzn-requestid", ""))
    body = r.json()
    assert helpers.error_type_of(body) == "ResourceNotFoundException", body
    assert body.get("message") == f"Stream {name} under account {helpers.ACCOUNT} not found.", body


def test_unknown_input_members_are_ignored(endpoint, stream):
    """Newer SDKs send members an older service does not know; the service ignores them."""
    r = helpers.raw_json(endpoint, "DescribeStreamSummary", {"StreamName": stream, "NotAKinesisMember": 1})
    body = _ok(r)
    assert body["StreamDescriptionSummary"]["StreamName"] == stream
