"""Resharding through boto3: SplitShard, MergeShards, UpdateShardCount, the lineage they leave
(ParentShardId, AdjacentParentShardId, EndingSequenceNumber), ListShards' ShardFilter, and
GetRecords at the end of a closed shard (no NextShardIterator, ChildShards).

Reference: Amazon Kinesis Data Streams API Reference (SplitShard, MergeShards,
UpdateShardCount, ListShards/ShardFilter, GetRecords/ChildShards) and botocore's kinesis
2013-12-02 service model.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from botocore.exceptions import ClientError

import helpers
from helpers import MAX_HASH_KEY, SEQ_RE

SHARD0 = "shardId-000000000000"
SHARD1 = "shardId-000000000001"
SHARD2 = "shardId-000000000002"
HALF = 2**127


def _expect(call, code: str) -> ClientError:
    with pytest.raises(ClientError) as ei:
        call()
    assert helpers.error_code(ei.value) == code, ei.value.response["Error"]
    assert helpers.http_status(ei.value) == 400
    return ei.value


def _by_id(kinesis, name: str) -> dict[str, dict]:
    return {s["ShardId"]: s for s in helpers.list_all_shards(kinesis, name)}


def _put(kinesis, name: str, tag: str, n: int = 20) -> list[tuple[str, str, bytes]]:
    """n records with keys k0..k{n-1}; returns (shard, sequence number, data) per record."""
    out = []
    resp = kinesis.put_records(
        StreamName=name,
        Records=[{"PartitionKey": f"k{i}", "Data": f"{tag}-{i}".encode()} for i in range(n)],
    )
    assert resp["FailedRecordCount"] == 0, resp
    for i, r in enumerate(resp["Records"]):
        out.append((r["ShardId"], r["SequenceNumber"], f"{tag}-{i}".encode()))
    return out


def _read_to_end(kinesis, name: str, shard_id: str, deadline_s: float = 30.0) -> tuple[list[dict], dict]:
    """Reads a closed shard from TRIM_HORIZON until GetRecords returns no next iterator."""
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    records: list[dict] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            resp = kinesis.get_records(ShardIterator=it)
        except ClientError as e:
            if helpers.error_code(e) == "ProvisionedThroughputExceededException":
                time.sleep(0.25)
                continue
            raise
        records.extend(resp["Records"])
        if "NextShardIterator" not in resp:
            return records, resp
        it = resp["NextShardIterator"]
        if not resp["Records"]:
            time.sleep(0.1)
    raise AssertionError(f"{shard_id} did not end within {deadline_s}s")


def test_split_shard_closes_the_parent_and_opens_two_children(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=1)
    before = _put(kinesis, stream_name, "before")
    assert {s for s, _, _ in before} == {SHARD0}
    split_at = dt.datetime.now(dt.timezone.utc)
    kinesis.split_shard(StreamName=stream_name, ShardToSplit=SHARD0, NewStartingHashKey=str(HALF))
    assert kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"][
        "StreamStatus"
    ] in ("UPDATING", "ACTIVE")
    helpers.wait_active(kinesis, stream_name)

    shards = _by_id(kinesis, stream_name)
    assert list(shards) == [SHARD0, SHARD1, SHARD2]
    parent, left, right = shards[SHARD0], shards[SHARD1], shards[SHARD2]
    end = parent["SequenceNumberRange"]["EndingSequenceNumber"]
    assert SEQ_RE.match(end)
    assert int(end) > max(int(s) for _, s, _ in before)
    assert left["ParentShardId"] == SHARD0 and right["ParentShardId"] == SHARD0
    assert "AdjacentParentShardId" not in left and "AdjacentParentShardId" not in right
    assert left["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(HALF - 1)}
    assert right["HashKeyRange"] == {"StartingHashKey": str(HALF), "EndingHashKey": str(MAX_HASH_KEY)}
    for child in (left, right):
        assert "EndingSequenceNumber" not in child["SequenceNumberRange"]
        assert int(child["SequenceNumberRange"]["StartingSequenceNumber"]) > int(end)
    assert kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"][
        "OpenShardCount"
    ] == 2

    # New records go to the child owning their hash key.
    after = _put(kinesis, stream_name, "after")
    for i, (shard, _, _) in enumerate(after):
        expected = SHARD1 if helpers.md5_hash_key(f"k{i}") < HALF else SHARD2
        assert shard == expected, f"k{i} went to {shard}"

    # The parent keeps its records and ends with its children named.
    records, last = _read_to_end(kinesis, stream_name, SHARD0)
    assert [r["Data"] for r in records] == [d for _, _, d in before]
    children = sorted(last["ChildShards"], key=lambda c: c["ShardId"])
    assert [c["ShardId"] for c in children] == [SHARD1, SHARD2]
    assert all(c["ParentShards"] == [SHARD0] for c in children)
    assert children[0]["HashKeyRange"] == left["HashKeyRange"]

    # ListShards' filters see the lineage.
    def listed(**f) -> list[str]:
        return [s["ShardId"] for s in kinesis.list_shards(StreamName=stream_name, ShardFilter=f)["Shards"]]

    assert listed(Type="AT_LATEST") == [SHARD1, SHARD2]
    assert listed(Type="AT_TRIM_HORIZON") == [SHARD0]
    assert listed(Type="FROM_TRIM_HORIZON") == [SHARD0, SHARD1, SHARD2]
    assert listed(Type="AFTER_SHARD_ID", ShardId=SHARD0) == [SHARD1, SHARD2]
    long_ago = split_at - dt.timedelta(hours=1)
    assert listed(Type="AT_TIMESTAMP", Timestamp=long_ago) == [SHARD0]
    assert listed(Type="FROM_TIMESTAMP", Timestamp=long_ago) == [SHARD0, SHARD1, SHARD2]
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    assert listed(Type="AT_TIMESTAMP", Timestamp=later) == [SHARD1, SHARD2]


def test_merge_shards_names_both_parents(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=2)
    kinesis.merge_shards(StreamName=stream_name, ShardToMerge=SHARD1, AdjacentShardToMerge=SHARD0)
    helpers.wait_active(kinesis, stream_name)
    shards = _by_id(kinesis, stream_name)
    child = shards[SHARD2]
    assert child["ParentShardId"] == SHARD1
    assert child["AdjacentParentShardId"] == SHARD0
    assert child["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(MAX_HASH_KEY)}
    assert all("EndingSequenceNumber" in shards[s]["SequenceNumberRange"] for s in (SHARD0, SHARD1))
    put = kinesis.put_record(StreamName=stream_name, PartitionKey="any", Data=b"x")
    assert put["ShardId"] == SHARD2
    _, last = _read_to_end(kinesis, stream_name, SHARD0)
    assert [c["ShardId"] for c in last["ChildShards"]] == [SHARD2]
    assert sorted(last["ChildShards"][0]["ParentShards"]) == [SHARD0, SHARD1]


def test_update_shard_count_scales_uniformly(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=2)
    resp = kinesis.update_shard_count(StreamName=stream_name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert resp["CurrentShardCount"] == 2 and resp["TargetShardCount"] == 4
    assert resp["StreamName"] == stream_name and resp["StreamARN"] == helpers.stream_arn(stream_name)
    helpers.wait_active(kinesis, stream_name)
    open_shards = [
        s for s in helpers.list_all_shards(kinesis, stream_name) if "EndingSequenceNumber" not in s["SequenceNumberRange"]
    ]
    step = 2**128 // 4
    assert [int(s["HashKeyRange"]["StartingHashKey"]) for s in open_shards] == [0, step, 2 * step, 3 * step]
    assert kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["OpenShardCount"] == 4

    e = _expect(
        lambda: kinesis.update_shard_count(StreamName=stream_name, TargetShardCount=9, ScalingType="UNIFORM_SCALING"),
        "LimitExceededException",
    )
    assert "double" in e.response["Error"]["Message"]
    _expect(
        lambda: kinesis.update_shard_count(StreamName=stream_name, TargetShardCount=1, ScalingType="UNIFORM_SCALING"),
        "LimitExceededException",
    )
    kinesis.update_shard_count(StreamName=stream_name, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
    helpers.wait_active(kinesis, stream_name, max_attempts=90)
    summary = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 3


def test_bad_reshard_requests_are_refused_and_change_nothing(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=3)
    before = helpers.list_all_shards(kinesis, stream_name)
    start1 = before[1]["HashKeyRange"]["StartingHashKey"]
    _expect(
        lambda: kinesis.split_shard(StreamName=stream_name, ShardToSplit=SHARD1, NewStartingHashKey=start1),
        "InvalidArgumentException",
    )
    _expect(
        lambda: kinesis.split_shard(StreamName=stream_name, ShardToSplit=SHARD0, NewStartingHashKey=str(MAX_HASH_KEY)),
        "InvalidArgumentException",
    )
    _expect(
        lambda: kinesis.split_shard(
            StreamName=stream_name, ShardToSplit="shardId-000000000099", NewStartingHashKey=str(HALF)
        ),
        "ResourceNotFoundException",
    )
    _expect(
        lambda: kinesis.merge_shards(StreamName=stream_name, ShardToMerge=SHARD0, AdjacentShardToMerge=SHARD2),
        "InvalidArgumentException",
    )
    _expect(
        lambda: kinesis.split_shard(StreamName="no-such-stream-x", ShardToSplit=SHARD0, NewStartingHashKey="5"),
        "ResourceNotFoundException",
    )
    assert helpers.list_all_shards(kinesis, stream_name) == before
    summary = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"


def test_on_demand_streams_refuse_manual_resharding(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=None, on_demand=True)
    _expect(
        lambda: kinesis.split_shard(StreamName=stream_name, ShardToSplit=SHARD0, NewStartingHashKey="5"),
        "ValidationException",
    )
    _expect(
        lambda: kinesis.update_shard_count(StreamName=stream_name, TargetShardCount=8, ScalingType="UNIFORM_SCALING"),
        "ValidationException",
    )
