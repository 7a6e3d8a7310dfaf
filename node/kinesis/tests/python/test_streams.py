"""Stream control plane through boto3: create, describe, list, retention, delete, limits.

Reference: Amazon Kinesis Data Streams API Reference (CreateStream, DescribeStream,
DescribeStreamSummary, ListStreams, ListShards, Increase/DecreaseStreamRetentionPeriod,
DeleteStream, DescribeLimits) and botocore's kinesis 2013-12-02 service model.
"""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

import helpers
from helpers import ACCOUNT, MAX_HASH_KEY, REGION, SEQ_RE, SHARD_ID_RE


def _assert_recent(ts: dt.datetime, slack_s: float = 600) -> None:
    assert isinstance(ts, dt.datetime), f"expected a datetime, got {type(ts)}: {ts!r}"
    assert ts.tzinfo is not None, "botocore returns timezone-aware timestamps"
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - ts).total_seconds()) < slack_s, f"timestamp {ts} is not close to now {now}"


def _assert_even_hash_ranges(shards: list[dict]) -> None:
    """AWS splits [0, 2^128-1] into n ranges: shard i starts at i*floor(2^128/n), the last
    one ends at 2^128-1, and ranges are contiguous."""
    n = len(shards)
    step = 2**128 // n
    for i, s in enumerate(shards):
        start = int(s["HashKeyRange"]["StartingHashKey"])
        end = int(s["HashKeyRange"]["EndingHashKey"])
        assert start == i * step, f"shard {i} starts at {start}, expected {i * step}"
        expected_end = MAX_HASH_KEY if i == n - 1 else (i + 1) * step - 1
        assert end == expected_end, f"shard {i} ends at {end}, expected {expected_end}"
        # Hash keys are decimal strings without leading zeros.
        assert s["HashKeyRange"]["StartingHashKey"] == str(start)
        assert s["HashKeyRange"]["EndingHashKey"] == str(end)


def test_create_provisioned_stream_and_describe_shape(kinesis, stream_name):
    assert kinesis.create_stream(StreamName=stream_name, ShardCount=3)["ResponseMetadata"]["HTTPStatusCode"] == 200
    helpers.wait_active(kinesis, stream_name)
    d = kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]

    assert d["StreamName"] == stream_name
    assert d["StreamARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream_name}"
    assert d["StreamStatus"] == "ACTIVE"
    assert d["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert d["HasMoreShards"] is False
    assert d["RetentionPeriodHours"] == 24
    _assert_recent(d["StreamCreationTimestamp"])
    assert d["EncryptionType"] == "NONE"
    assert d["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]

    shards = d["Shards"]
    assert [s["ShardId"] for s in shards] == [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
    ]
    _assert_even_hash_ranges(shards)
    for s in shards:
        rng = s["SequenceNumberRange"]
        # SequenceNumber shape in the model: 0|([1-9]\d{0,128}), so no leading zeros.
        assert SEQ_RE.match(rng["StartingSequenceNumber"]), rng
        assert "EndingSequenceNumber" not in rng, "open shards have no EndingSequenceNumber"
        assert "ParentShardId" not in s


def test_describe_stream_limit_and_paginator(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=3)
    page = kinesis.describe_stream(StreamName=stream_name, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in page["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    assert page["HasMoreShards"] is True
    rest = kinesis.describe_stream(
        StreamName=stream_name, Limit=2, ExclusiveStartShardId="shardId-000000000001"
    )["StreamDescription"]
    assert [s["ShardId"] for s in rest["Shards"]] == ["shardId-000000000002"]
    assert rest["HasMoreShards"] is False

    full = kinesis.get_paginator("describe_stream").paginate(
        StreamName=stream_name, PaginationConfig={"PageSize": 1}
    ).build_full_result()
    assert [s["ShardId"] for s in full["StreamDescription"]["Shards"]] == [
        f"shardId-00000000000{i}" for i in range(3)
    ]


@pytest.mark.parametrize("count", [1, 2, 5])
def test_hash_ranges_cover_keyspace(kinesis, stream_name, count):
    d = helpers.create_stream(kinesis, stream_name, shard_count=count)
    assert len(d["Shards"]) == count
    _assert_even_hash_ranges(d["Shards"])


def test_create_on_demand_stream_has_four_shards(kinesis, stream_name):
    kinesis.create_stream(StreamName=stream_name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    helpers.wait_active(kinesis, stream_name)
    s = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    assert s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert s["OpenShardCount"] == 4
    shards = helpers.list_all_shards(kinesis, stream_name)
    assert len(shards) == 4
    _assert_even_hash_ranges(shards)


def test_describe_stream_summary_shape(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=2)
    s = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    assert s["StreamName"] == stream_name
    assert s["StreamARN"] == helpers.stream_arn(stream_name)
    assert s["StreamStatus"] == "ACTIVE"
    assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert s["RetentionPeriodHours"] == 24
    _assert_recent(s["StreamCreationTimestamp"])
    assert isinstance(s["EnhancedMonitoring"], list)
    assert s["EncryptionType"] == "NONE"
    assert s["OpenShardCount"] == 2
    assert "Shards" not in s


def test_list_streams_limit_and_next_token(kinesis):
    prefix = helpers.unique_name("ls")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        kinesis.create_stream(StreamName=n, ShardCount=1)
    for n in names:
        helpers.wait_active(kinesis, n)

    first = kinesis.list_streams(Limit=2)
    assert len(first["StreamNames"]) == 2
    assert first["HasMoreStreams"] is True
    assert first.get("NextToken"), "a truncated ListStreams page carries a NextToken"
    assert [s["StreamName"] for s in first["StreamSummaries"]] == first["StreamNames"]
    for summ in first["StreamSummaries"]:
        assert summ["StreamARN"] == helpers.stream_arn(summ["StreamName"])
        assert summ["StreamStatus"] in ("CREATING", "ACTIVE", "DELETING", "UPDATING")
        assert summ["StreamModeDetails"]["StreamMode"] in ("PROVISIONED", "ON_DEMAND")
        _assert_recent(summ["StreamCreationTimestamp"], slack_s=3600)

    # Follow NextToken by hand until HasMoreStreams is false.
    seen = list(first["StreamNames"])
    resp = first
    for _ in range(1000):
        if not resp["HasMoreStreams"]:
            break
        resp = kinesis.list_streams(Limit=2, NextToken=resp["NextToken"])
        assert len(resp["StreamNames"]) <= 2
        assert [s["StreamName"] for s in resp["StreamSummaries"]] == resp["StreamNames"]
        seen.extend(resp["StreamNames"])
    assert resp["HasMoreStreams"] is False
    assert len(seen) == len(set(seen)), "pages overlap"
    assert seen == sorted(seen), "ListStreams returns names in lexicographic order"
    assert set(names) <= set(seen)


def test_list_streams_paginator(kinesis):
    prefix = helpers.unique_name("lsp")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        kinesis.create_stream(StreamName=n, ShardCount=1)
    for n in names:
        helpers.wait_active(kinesis, n)

    pages = list(kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2}))
    assert len(pages) >= 3
    all_names = []
    for p in pages:
        assert len(p["StreamNames"]) <= 2
        all_names.extend(p["StreamNames"])
    assert set(names) <= set(all_names)
    assert len(all_names) == len(set(all_names))
    assert pages[-1]["HasMoreStreams"] is False

    built = kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2}).build_full_result()
    assert set(names) <= set(built["StreamNames"])
    assert {s["StreamName"] for s in built["StreamSummaries"]} == set(built["StreamNames"])


def test_list_streams_exclusive_start_stream_name(kinesis):
    prefix = helpers.unique_name("lse")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        kinesis.create_stream(StreamName=n, ShardCount=1)
    for n in names:
        helpers.wait_active(kinesis, n)
    resp = kinesis.list_streams(ExclusiveStartStreamName=names[0], Limit=2)
    assert resp["StreamNames"] == names[1:3]


def test_list_shards_max_results_and_next_token(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=3)
    first = kinesis.list_shards(StreamName=stream_name, MaxResults=1)
    assert [s["ShardId"] for s in first["Shards"]] == ["shardId-000000000000"]
    assert first.get("NextToken")

    got = list(first["Shards"])
    token = first["NextToken"]
    for _ in range(5):
        if not token:
            break
        # NextToken alone identifies the stream.
        page = kinesis.list_shards(NextToken=token, MaxResults=1)
        assert len(page["Shards"]) <= 1
        got.extend(page["Shards"])
        token = page.get("NextToken")
    assert token is None, "the listing ends without a NextToken"
    assert [s["ShardId"] for s in got] == [f"shardId-00000000000{i}" for i in range(3)]
    for s in got:
        assert SHARD_ID_RE.match(s["ShardId"])
        assert "HashKeyRange" in s and "SequenceNumberRange" in s

    # All shards fit in one default page: no NextToken at all.
    whole = kinesis.list_shards(StreamName=stream_name)
    assert len(whole["Shards"]) == 3
    assert "NextToken" not in whole


def test_list_shards_next_token_with_stream_name_is_rejected(kinesis, stream_name):
    """API_ListShards: "Don't specify StreamName or StreamCreationTimestamp if you specify
    NextToken"; AWS answers InvalidArgumentException "NextToken and StreamName cannot be
    provided together." (botocore issue #2009)."""
    helpers.create_stream(kinesis, stream_name, shard_count=3)
    token = kinesis.list_shards(StreamName=stream_name, MaxResults=1)["NextToken"]
    with pytest.raises(ClientError) as ei:
        kinesis.list_shards(StreamName=stream_name, NextToken=token, MaxResults=1)
    assert helpers.error_code(ei.value) == "InvalidArgumentException"
    assert helpers.http_status(ei.value) == 400
    assert "NextToken" in ei.value.response["Error"]["Message"]


def test_list_shards_paginator(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=3)
    # botocore's paginator re-sends its whole input with NextToken added, and Kinesis
    # refuses StreamName together with NextToken (see the test above), so a multi-page
    # walk starts from the first page's token alone.
    first = kinesis.list_shards(StreamName=stream_name, MaxResults=1)
    pages = list(
        kinesis.get_paginator("list_shards").paginate(
            NextToken=first["NextToken"], PaginationConfig={"PageSize": 1}
        )
    )
    ids = [s["ShardId"] for s in first["Shards"]] + [s["ShardId"] for p in pages for s in p["Shards"]]
    assert ids == [f"shardId-00000000000{i}" for i in range(3)]

    # With StreamName and the default page size everything fits in one page, so the
    # paginator stops after it (no NextToken to follow).
    full = kinesis.get_paginator("list_shards").paginate(StreamName=stream_name).build_full_result()
    assert [s["ShardId"] for s in full["Shards"]] == ids


def test_list_shards_shard_filter(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=3)
    all_ids = [f"shardId-00000000000{i}" for i in range(3)]

    after = kinesis.list_shards(
        StreamName=stream_name, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000000"}
    )
    assert [s["ShardId"] for s in after["Shards"]] == all_ids[1:]

    latest = kinesis.list_shards(StreamName=stream_name, ShardFilter={"Type": "AT_LATEST"})
    assert [s["ShardId"] for s in latest["Shards"]] == all_ids

    trim = kinesis.list_shards(StreamName=stream_name, ShardFilter={"Type": "AT_TRIM_HORIZON"})
    assert [s["ShardId"] for s in trim["Shards"]] == all_ids

    from_trim = kinesis.list_shards(StreamName=stream_name, ShardFilter={"Type": "FROM_TRIM_HORIZON"})
    assert [s["ShardId"] for s in from_trim["Shards"]] == all_ids


def test_list_shards_exclusive_start_shard_id(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=3)
    resp = kinesis.list_shards(StreamName=stream_name, ExclusiveStartShardId="shardId-000000000001")
    assert [s["ShardId"] for s in resp["Shards"]] == ["shardId-000000000002"]


def test_stream_arn_accepted_instead_of_name(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=1)
    arn = helpers.stream_arn(stream_name)

    summary = kinesis.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
    assert summary["StreamName"] == stream_name
    assert summary["StreamARN"] == arn

    put = kinesis.put_record(StreamARN=arn, Data=b"via-arn", PartitionKey="k")
    assert put["ShardId"] == "shardId-000000000000"

    it = kinesis.get_shard_iterator(
        StreamARN=arn, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    recs = helpers.read_shard(kinesis, it, want=1)
    assert [r["Data"] for r in recs] == [b"via-arn"]
    assert recs[0]["SequenceNumber"] == put["SequenceNumber"]

    shards = kinesis.list_shards(StreamARN=arn)["Shards"]
    assert [s["ShardId"] for s in shards] == ["shardId-000000000000"]


def test_retention_period_increase_and_decrease(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=1)

    kinesis.increase_stream_retention_period(StreamName=stream_name, RetentionPeriodHours=48)
    assert kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48

    kinesis.increase_stream_retention_period(StreamName=stream_name, RetentionPeriodHours=8760)
    assert kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 8760

    kinesis.decrease_stream_retention_period(StreamName=stream_name, RetentionPeriodHours=24)
    assert kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]["RetentionPeriodHours"] == 24


@pytest.mark.parametrize(
    "op,hours,why",
    [
        pytest.param("increase", 12, "below the current period (and the 24 h minimum)", id="increase-12"),
        pytest.param("increase", 8761, "above the 8760 h maximum", id="increase-8761"),
        pytest.param("decrease", 48, "longer than the current period", id="decrease-48"),
        pytest.param("decrease", 23, "below the 24 h minimum", id="decrease-23"),
    ],
)
def test_retention_period_invalid_argument(kinesis, stream, op, hours, why):
    call = getattr(kinesis, f"{op}_stream_retention_period")
    with pytest.raises(ClientError) as ei:
        call(StreamName=stream, RetentionPeriodHours=hours)
    assert helpers.error_code(ei.value) == "InvalidArgumentException", why
    assert helpers.http_status(ei.value) == 400
    assert ei.value.response["Error"]["Message"]
    # Unchanged.
    assert kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 24


def test_delete_stream_and_stream_not_exists_waiter(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=2)
    resp = kinesis.delete_stream(StreamName=stream_name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    helpers.wait_gone(kinesis, stream_name)
    with pytest.raises(ClientError) as ei:
        kinesis.describe_stream(StreamName=stream_name)
    assert helpers.error_code(ei.value) == "ResourceNotFoundException"
    assert stream_name not in kinesis.list_streams(ExclusiveStartStreamName=stream_name[:-1])["StreamNames"]
    # The name is free again.
    helpers.create_stream(kinesis, stream_name, shard_count=1)


def test_delete_stream_by_arn(kinesis, stream_name):
    helpers.create_stream(kinesis, stream_name, shard_count=1)
    kinesis.delete_stream(StreamARN=helpers.stream_arn(stream_name))
    helpers.wait_gone(kinesis, stream_name)


def test_describe_limits_shape(kinesis, stream_name):
    before = kinesis.describe_limits()
    for key in ("ShardLimit", "OpenShardCount", "OnDemandStreamCount", "OnDemandStreamCountLimit"):
        assert isinstance(before[key], int), f"{key} missing or not an integer: {before.get(key)!r}"
        assert before[key] >= 0
    assert before["ShardLimit"] > 0
    assert before["OnDemandStreamCountLimit"] > 0
    assert before["OpenShardCount"] <= before["ShardLimit"]

    helpers.create_stream(kinesis, stream_name, shard_count=2)
    after = kinesis.describe_limits()
    assert after["OpenShardCount"] >= 2
    assert after["ShardLimit"] == before["ShardLimit"]
