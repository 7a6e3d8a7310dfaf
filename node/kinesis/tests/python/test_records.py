"""Data plane through boto3: PutRecord(s), GetShardIterator, GetRecords, throttling.

Reference: Amazon Kinesis Data Streams API Reference (PutRecord, PutRecords,
GetShardIterator, GetRecords) and the developer guide's "Partition Key" (MD5 of the
partition key picks the shard) and per-shard write quota (1,000 records/s, 1 MiB/s).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time

import pytest

import helpers
from helpers import SEQ_RE, SHARD_ID_RE


def test_put_record_returns_shard_and_sequence_number(kinesis, stream):
    a = kinesis.put_record(StreamName=stream, Data=b"first", PartitionKey="pk")
    b = kinesis.put_record(StreamName=stream, Data=b"second", PartitionKey="pk")
    for r in (a, b):
        assert r["ShardId"] == "shardId-000000000000"
        assert SHARD_ID_RE.match(r["ShardId"])
        # SequenceNumber shape in the model: 0|([1-9]\d{0,128}), so no leading zeros.
        assert SEQ_RE.match(r["SequenceNumber"]), r["SequenceNumber"]
    assert int(b["SequenceNumber"]) > int(a["SequenceNumber"]), "sequence numbers grow within a shard"


def test_put_records_500_roundtrip_bytes_and_per_shard_order(kinesis, stream_name):
    d = helpers.create_stream(kinesis, stream_name, shard_count=4)
    shard_ids = [s["ShardId"] for s in d["Shards"]]
    rng = random.Random(20131202)
    entries = [
        {"Data": rng.randbytes(1024), "PartitionKey": f"key-{i % 37}-{rng.randrange(1000)}"}
        for i in range(500)
    ]
    resp = kinesis.put_records(StreamName=stream_name, Records=entries)
    assert resp["FailedRecordCount"] == 0
    assert len(resp["Records"]) == 500
    per_shard: dict[str, list[tuple[int, bytes, str]]] = {sid: [] for sid in shard_ids}
    for e, r in zip(entries, resp["Records"]):
        assert "ErrorCode" not in r, r
        assert r["ShardId"] in per_shard
        assert r["SequenceNumber"].isdigit()
        assert r["ShardId"] == helpers.shard_owning(d["Shards"], helpers.md5_hash_key(e["PartitionKey"]))
        per_shard[r["ShardId"]].append((int(r["SequenceNumber"]), e["Data"], e["PartitionKey"]))
    for sid, entries_of_shard in per_shard.items():
        assert len({seq for seq, _, _ in entries_of_shard}) == len(entries_of_shard), f"{sid}: duplicate sequence numbers"

    for sid, expected in per_shard.items():
        expected.sort()
        got = helpers.read_from(kinesis, stream_name, sid, want=len(expected), deadline_s=30, drain=True)
        assert len(got) == len(expected), f"{sid}: read {len(got)} of {len(expected)} records"
        seqs = [int(g["SequenceNumber"]) for g in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"{sid}: not in sequence order"
        assert [(int(g["SequenceNumber"]), g["Data"], g["PartitionKey"]) for g in got] == expected


def test_explicit_hash_key_routes_to_owning_shard(kinesis, stream_name):
    d = helpers.create_stream(kinesis, stream_name, shard_count=4)
    for s in d["Shards"]:
        for key in (s["HashKeyRange"]["StartingHashKey"], s["HashKeyRange"]["EndingHashKey"]):
            r = kinesis.put_record(
                StreamName=stream_name, Data=b"x", PartitionKey="same-key", ExplicitHashKey=key
            )
            assert r["ShardId"] == s["ShardId"], f"hash key {key} belongs to {s['ShardId']}"
    # PutRecords honours ExplicitHashKey per entry too.
    last = d["Shards"][-1]
    resp = kinesis.put_records(
        StreamName=stream_name,
        Records=[{"Data": b"y", "PartitionKey": "same-key", "ExplicitHashKey": last["HashKeyRange"]["EndingHashKey"]}],
    )
    assert resp["Records"][0]["ShardId"] == last["ShardId"]


def test_partition_key_md5_routing(kinesis, stream_name):
    d = helpers.create_stream(kinesis, stream_name, shard_count=4)
    for i in range(24):
        pk = f"partition-{i}"
        r = kinesis.put_record(StreamName=stream_name, Data=b"z", PartitionKey=pk)
        assert r["ShardId"] == helpers.shard_owning(d["Shards"], helpers.md5_hash_key(pk)), pk


def _put_n(kinesis, stream, n, prefix):
    out = []
    for i in range(n):
        r = kinesis.put_record(StreamName=stream, Data=f"{prefix}{i}".encode(), PartitionKey="pk")
        out.append(r["SequenceNumber"])
    return out


def test_get_shard_iterator_at_and_after_sequence_number(kinesis, stream):
    seqs = _put_n(kinesis, stream, 5, "r")
    shard = "shardId-000000000000"

    at = helpers.read_from(kinesis, stream, shard, want=3, iterator_type="AT_SEQUENCE_NUMBER",
                           StartingSequenceNumber=seqs[2])
    assert [r["Data"] for r in at] == [b"r2", b"r3", b"r4"]
    assert at[0]["SequenceNumber"] == seqs[2]

    after = helpers.read_from(kinesis, stream, shard, want=2, iterator_type="AFTER_SEQUENCE_NUMBER",
                              StartingSequenceNumber=seqs[2])
    assert [r["Data"] for r in after] == [b"r3", b"r4"]

    trim = helpers.read_from(kinesis, stream, shard, want=5)
    assert [r["Data"] for r in trim] == [b"r0", b"r1", b"r2", b"r3", b"r4"]
    assert [r["SequenceNumber"] for r in trim] == seqs


def test_get_shard_iterator_latest(kinesis, stream):
    _put_n(kinesis, stream, 3, "old")
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="LATEST"
    )["ShardIterator"]
    first = kinesis.get_records(ShardIterator=it)
    assert first["Records"] == []
    assert first.get("NextShardIterator")
    kinesis.put_record(StreamName=stream, Data=b"new", PartitionKey="pk")
    got = helpers.read_shard(kinesis, first["NextShardIterator"], want=1)
    assert [r["Data"] for r in got] == [b"new"]


def test_get_shard_iterator_at_timestamp(kinesis, stream):
    before = _put_n(kinesis, stream, 3, "a")
    assert before
    # botocore sends JSON timestamps as whole epoch seconds, so T is the next whole second
    # after the last "a" arrival; let the (shared host) wall clock pass it before the "b"s.
    t_epoch = math.floor(time.time()) + 1
    time.sleep(max(0.0, t_epoch - time.time()) + 0.05)
    t = dt.datetime.fromtimestamp(t_epoch, dt.timezone.utc)
    _put_n(kinesis, stream, 2, "b")

    got = helpers.read_from(kinesis, stream, "shardId-000000000000", want=2, iterator_type="AT_TIMESTAMP",
                            Timestamp=t)
    assert [r["Data"] for r in got] == [b"b0", b"b1"]
    for r in got:
        ts = r["ApproximateArrivalTimestamp"]
        assert isinstance(ts, dt.datetime) and ts.tzinfo is not None
        assert ts >= t - dt.timedelta(milliseconds=1)
        assert abs((dt.datetime.now(dt.timezone.utc) - ts).total_seconds()) < 120

    # A timestamp before the stream existed reads from the trim horizon.
    old = helpers.read_from(kinesis, stream, "shardId-000000000000", want=5, iterator_type="AT_TIMESTAMP",
                            Timestamp=dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc))
    assert [r["Data"] for r in old] == [b"a0", b"a1", b"a2", b"b0", b"b1"]


def test_get_records_limit_next_iterator_and_millis_behind(kinesis, stream):
    _put_n(kinesis, stream, 10, "m")
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    first = kinesis.get_records(ShardIterator=it, Limit=3)
    assert [r["Data"] for r in first["Records"]] == [b"m0", b"m1", b"m2"]
    assert first.get("NextShardIterator"), "an open shard always yields a NextShardIterator"
    assert isinstance(first.get("MillisBehindLatest"), int) and first["MillisBehindLatest"] >= 0
    for r in first["Records"]:
        assert r["PartitionKey"] == "pk"
        assert isinstance(r["ApproximateArrivalTimestamp"], dt.datetime)

    second = kinesis.get_records(ShardIterator=first["NextShardIterator"], Limit=3)
    assert [r["Data"] for r in second["Records"]] == [b"m3", b"m4", b"m5"]

    rest = kinesis.get_records(ShardIterator=second["NextShardIterator"])
    assert [r["Data"] for r in rest["Records"]] == [b"m6", b"m7", b"m8", b"m9"]
    assert rest["MillisBehindLatest"] == 0, "caught up with the tip"
    assert rest.get("NextShardIterator")

    tail = kinesis.get_records(ShardIterator=rest["NextShardIterator"])
    assert tail["Records"] == []
    assert tail.get("NextShardIterator")
    assert tail["MillisBehindLatest"] == 0


def test_put_records_partial_throttling(kinesis, stream):
    """Over 1,000 records/s to one shard: PutRecords answers 200 with per-entry
    ProvisionedThroughputExceededException (ErrorCode + ErrorMessage, no SequenceNumber),
    FailedRecordCount counting them; accepted entries are stored, refused ones are not."""
    sent = helpers.throttle_shard(kinesis, stream, partition_key="hot", tag="thr")
    assert sent[-1][1]["FailedRecordCount"] > 0, (
        f"no entry was throttled after {sum(len(p) for p, _ in sent)} records sent back to back "
        "to one shard (limit: 1,000 records/s)"
    )
    ok: set[bytes] = set()
    failed: set[bytes] = set()
    for payloads, resp in sent:
        assert len(resp["Records"]) == len(payloads)
        n_failed = 0
        for p, r in zip(payloads, resp["Records"]):
            if "ErrorCode" in r:
                n_failed += 1
                assert r["ErrorCode"] == "ProvisionedThroughputExceededException", r
                assert r.get("ErrorMessage"), r
                assert "SequenceNumber" not in r and "ShardId" not in r, r
                failed.add(p)
            else:
                assert r["SequenceNumber"].isdigit() and r["ShardId"] == "shardId-000000000000", r
                ok.add(p)
        assert resp["FailedRecordCount"] == n_failed

    got = helpers.read_from(kinesis, stream, "shardId-000000000000", want=len(ok), deadline_s=40, drain=True)
    read = [r["Data"] for r in got]
    assert set(read) == ok, f"read {len(read)} records, {len(ok)} were accepted"
    assert not (set(read) & failed), "a throttled entry was stored"
    assert len(read) == len(ok)
