"""Stream settings, consumers and account actions through boto3: tags, enhanced fan-out
consumers and SubscribeToShard, enhanced monitoring, stream mode, maximum record size, warm
throughput, encryption, resource policies, account settings and limits.

Reference: Amazon Kinesis Data Streams API Reference (AddTagsToStream, ListTagsForStream,
RemoveTagsFromStream, TagResource, UntagResource, ListTagsForResource, RegisterStreamConsumer,
DescribeStreamConsumer, ListStreamConsumers, DeregisterStreamConsumer, SubscribeToShard,
SubscribeToShardEvent, Enable/DisableEnhancedMonitoring, UpdateStreamMode, UpdateMaxRecordSize,
UpdateStreamWarmThroughput, Start/StopStreamEncryption, Put/Get/DeleteResourcePolicy,
DescribeAccountSettings, UpdateAccountSettings, DescribeLimits), the "Handle large records" developer guide page, and botocore's kinesis
2013-12-02 service model.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import helpers
from helpers import SEQ_RE, UUID_RE

ALL_METRICS = sorted([
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
])
SHARD0 = "shardId-000000000000"
# Bound for every wait on an asynchronous state change (consumer CREATING -> ACTIVE, ...).
STATE_DEADLINE_S = 30.0
# Bound for waiting on records delivered over a SubscribeToShard event stream.
SUBSCRIBE_DEADLINE_S = 30.0


# ---------------------------------------------------------------------------
# Helpers


def _expect(call, *codes: str, status: int = 400) -> ClientError:
    """`call` fails with one of `codes` (an AWS error name), HTTP `status` and a request id."""
    with pytest.raises(ClientError) as ei:
        call()
    e = ei.value
    assert helpers.error_code(e) in codes, f"expected one of {codes}, got {e.response['Error']}"
    assert helpers.http_status(e) == status, e.response
    rid = helpers.request_id_header(e)
    assert rid and UUID_RE.match(rid), f"x-amzn-RequestId missing or not a UUID: {rid!r}"
    return e


def _assert_recent(ts, slack_s: float = 600) -> None:
    assert isinstance(ts, dt.datetime), f"expected a datetime, got {type(ts)}: {ts!r}"
    assert ts.tzinfo is not None, "botocore returns timezone-aware timestamps"
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - ts).total_seconds()) < slack_s, f"timestamp {ts} is not close to now {now}"


def _summary(kinesis, name: str) -> dict:
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]


def _tags_dict(tag_list: list[dict]) -> dict:
    for t in tag_list:
        assert set(t) <= {"Key", "Value"} and "Key" in t, f"a Tag is {{Key, Value}}: {t!r}"
    keys = [t["Key"] for t in tag_list]
    assert len(keys) == len(set(keys)), f"duplicate tag keys: {keys}"
    return {t["Key"]: t.get("Value", "") for t in tag_list}


def _all_tags(kinesis, name: str) -> dict:
    resp = kinesis.list_tags_for_stream(StreamName=name)
    assert resp["HasMoreTags"] is False, "more than 50 tags cannot exist, so one call lists them all"
    return _tags_dict(resp["Tags"])


def _poll(fetch, done, what: str, deadline_s: float = STATE_DEADLINE_S, every_s: float = 0.2):
    """Call fetch() until done(value) holds or the deadline passes; return the last value."""
    deadline = time.monotonic() + deadline_s
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {deadline_s}s, last seen {value!r}")
        time.sleep(every_s)
        value = fetch()
    return value


def _wait_consumer_active(kinesis, consumer_arn: str) -> dict:
    return _poll(
        lambda: kinesis.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"],
        lambda d: d["ConsumerStatus"] == "ACTIVE",
        f"consumer {consumer_arn} ACTIVE",
    )


def _wait_consumer_gone(kinesis, consumer_arn: str) -> None:
    """DeregisterStreamConsumer is asynchronous: DELETING, then gone (ResourceNotFound)."""
    deadline = time.monotonic() + STATE_DEADLINE_S
    while True:
        try:
            d = kinesis.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]
        except ClientError as e:
            assert helpers.error_code(e) == "ResourceNotFoundException", e.response
            return
        assert d["ConsumerStatus"] == "DELETING", f"a deregistered consumer may only be DELETING: {d}"
        if time.monotonic() > deadline:
            raise AssertionError(f"consumer {consumer_arn} still DELETING after {STATE_DEADLINE_S}s")
        time.sleep(0.2)


def _register_active(kinesis, stream_arn: str, name: str) -> dict:
    c = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name)["Consumer"]
    _wait_consumer_active(kinesis, c["ConsumerARN"])
    return c


def _consumer_arn_re(stream_arn: str, name: str) -> re.Pattern:
    return re.compile("^" + re.escape(f"{stream_arn}/consumer/{name}:") + r"(\d+)$")


@pytest.fixture(scope="module")
def kinesis_subscriber(streamd):
    """A boto3 client for SubscribeToShard whose reads time out well within a test's deadline
    (the server sends an event at least every 5 s), so a stalled event stream fails the test
    instead of hanging it."""
    return boto3.client(
        "kinesis",
        endpoint_url=streamd.endpoint,
        region_name=helpers.REGION,
        aws_access_key_id=helpers.KEY_ID,
        aws_secret_access_key=helpers.SECRET,
        config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=15),
    )


def _collect_events(event_stream, want: int, deadline_s: float = SUBSCRIBE_DEADLINE_S):
    """Iterate a SubscribeToShard EventStream until `want` records arrived or the deadline
    passed. Returns (records, events)."""
    records: list[dict] = []
    events: list[dict] = []
    deadline = time.monotonic() + deadline_s
    for ev in event_stream:
        assert set(ev) == {"SubscribeToShardEvent"}, f"unexpected event: {ev!r}"
        body = ev["SubscribeToShardEvent"]
        events.append(body)
        records.extend(body["Records"])
        if len(records) >= want or time.monotonic() > deadline:
            break
    return records, events


# ---------------------------------------------------------------------------
# Tags


def test_create_stream_with_tags_and_list_tags_shape(kinesis, stream_name):
    kinesis.create_stream(StreamName=stream_name, ShardCount=1, Tags={"team": "data", "env": "test"})
    helpers.wait_active(kinesis, stream_name)

    resp = kinesis.list_tags_for_stream(StreamName=stream_name)
    assert resp["HasMoreTags"] is False
    assert isinstance(resp["Tags"], list)
    assert _tags_dict(resp["Tags"]) == {"team": "data", "env": "test"}

    # The StreamARN addresses the stream as well as its name.
    by_arn = kinesis.list_tags_for_stream(StreamARN=helpers.stream_arn(stream_name))
    assert _tags_dict(by_arn["Tags"]) == {"team": "data", "env": "test"}


def test_add_tags_overwrites_and_remove_tags(kinesis, stream):
    kinesis.add_tags_to_stream(StreamName=stream, Tags={"a": "1", "b": "2", "empty": ""})
    assert _all_tags(kinesis, stream) == {"a": "1", "b": "2", "empty": ""}

    # AddTagsToStream overwrites the values of keys already present.
    kinesis.add_tags_to_stream(StreamName=stream, Tags={"a": "10", "c": "3"})
    assert _all_tags(kinesis, stream) == {"a": "10", "b": "2", "c": "3", "empty": ""}

    kinesis.remove_tags_from_stream(StreamName=stream, TagKeys=["b", "empty"])
    assert _all_tags(kinesis, stream) == {"a": "10", "c": "3"}

    # Removing a key the stream does not carry is not an error.
    kinesis.remove_tags_from_stream(StreamName=stream, TagKeys=["never-set"])
    assert _all_tags(kinesis, stream) == {"a": "10", "c": "3"}


def test_list_tags_for_stream_limit_and_exclusive_start_tag_key(kinesis, stream):
    tags = {f"key-{i:02d}": f"value-{i}" for i in range(7)}
    kinesis.add_tags_to_stream(StreamName=stream, Tags=tags)

    seen: dict = {}
    pages = 0
    kwargs: dict = {"StreamName": stream, "Limit": 3}
    while True:
        resp = kinesis.list_tags_for_stream(**kwargs)
        pages += 1
        assert pages <= 7, "paging does not terminate"
        page = _tags_dict(resp["Tags"])
        assert 1 <= len(page) <= 3, f"Limit=3 page has {len(page)} tags"
        assert not (set(page) & set(seen)), f"tags listed twice: {set(page) & set(seen)}"
        seen.update(page)
        if not resp["HasMoreTags"]:
            break
        assert len(page) == 3, "a page that is not the last one is full"
        kwargs["ExclusiveStartTagKey"] = resp["Tags"][-1]["Key"]
    assert pages == 3
    assert seen == tags

    # HasMoreTags is false when Limit covers every tag.
    resp = kinesis.list_tags_for_stream(StreamName=stream, Limit=7)
    assert resp["HasMoreTags"] is False
    assert _tags_dict(resp["Tags"]) == tags


def test_tag_resource_untag_resource_list_tags_for_resource(kinesis, stream):
    arn = helpers.stream_arn(stream)
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == []

    kinesis.tag_resource(ResourceARN=arn, Tags={"owner": "alice", "cost-center": "42"})
    resp = kinesis.list_tags_for_resource(ResourceARN=arn)
    assert _tags_dict(resp["Tags"]) == {"owner": "alice", "cost-center": "42"}
    # The same tags through the stream-scoped action.
    assert _all_tags(kinesis, stream) == {"owner": "alice", "cost-center": "42"}

    kinesis.untag_resource(ResourceARN=arn, TagKeys=["owner"])
    assert _tags_dict(kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]) == {"cost-center": "42"}


def test_more_than_50_tags_refused_in_one_call(kinesis, stream):
    tags = {f"k{i:02d}": "v" for i in range(51)}
    e = _expect(
        lambda: kinesis.add_tags_to_stream(StreamName=stream, Tags=tags),
        "LimitExceededException", "InvalidArgumentException",
    )
    assert e.response["Error"]["Message"], "the refusal carries a message"
    assert _all_tags(kinesis, stream) == {}, "a refused AddTagsToStream adds nothing"


def test_more_than_50_tags_refused_across_calls(kinesis, stream):
    first = {f"k{i:02d}": "v" for i in range(45)}
    kinesis.add_tags_to_stream(StreamName=stream, Tags=first)
    # Overwriting existing keys does not count as new tags.
    kinesis.add_tags_to_stream(StreamName=stream, Tags={"k00": "changed"})
    more = {f"m{i:02d}": "v" for i in range(6)}
    _expect(
        lambda: kinesis.add_tags_to_stream(StreamName=stream, Tags=more),
        "LimitExceededException", "InvalidArgumentException",
    )
    _expect(
        lambda: kinesis.tag_resource(ResourceARN=helpers.stream_arn(stream), Tags=more),
        "LimitExceededException", "InvalidArgumentException",
    )
    assert _all_tags(kinesis, stream) == {**first, "k00": "changed"}

    # Exactly 50 is allowed.
    kinesis.add_tags_to_stream(StreamName=stream, Tags={f"m{i:02d}": "v" for i in range(5)})
    assert len(_all_tags(kinesis, stream)) == 50


def test_tags_of_unknown_stream_resource_not_found(kinesis):
    missing = helpers.unique_name("no-such-stream")
    _expect(lambda: kinesis.list_tags_for_stream(StreamName=missing), "ResourceNotFoundException")
    _expect(lambda: kinesis.add_tags_to_stream(StreamName=missing, Tags={"a": "b"}), "ResourceNotFoundException")
    _expect(lambda: kinesis.remove_tags_from_stream(StreamName=missing, TagKeys=["a"]), "ResourceNotFoundException")
    arn = helpers.stream_arn(missing)
    _expect(lambda: kinesis.list_tags_for_resource(ResourceARN=arn), "ResourceNotFoundException")
    _expect(lambda: kinesis.tag_resource(ResourceARN=arn, Tags={"a": "b"}), "ResourceNotFoundException")
    _expect(lambda: kinesis.untag_resource(ResourceARN=arn, TagKeys=["a"]), "ResourceNotFoundException")


# ---------------------------------------------------------------------------
# Enhanced fan-out consumers


def test_register_stream_consumer_shape_and_describe_until_active(kinesis, stream):
    stream_arn = _summary(kinesis, stream)["StreamARN"]
    assert stream_arn == helpers.stream_arn(stream)

    resp = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="app-1")
    c = resp["Consumer"]
    assert c["ConsumerName"] == "app-1"
    assert c["ConsumerStatus"] in ("CREATING", "ACTIVE")
    _assert_recent(c["ConsumerCreationTimestamp"])
    m = _consumer_arn_re(stream_arn, "app-1").match(c["ConsumerARN"])
    assert m, f"ConsumerARN {c['ConsumerARN']!r} is not <streamARN>/consumer/app-1:<epoch seconds>"
    assert abs(int(m.group(1)) - c["ConsumerCreationTimestamp"].timestamp()) <= 1, (
        "the ARN's suffix is the creation time in epoch seconds"
    )

    by_arn = _wait_consumer_active(kinesis, c["ConsumerARN"])
    assert by_arn == {
        "ConsumerName": "app-1",
        "ConsumerARN": c["ConsumerARN"],
        "ConsumerStatus": "ACTIVE",
        "ConsumerCreationTimestamp": c["ConsumerCreationTimestamp"],
        "StreamARN": stream_arn,
    }
    by_name = kinesis.describe_stream_consumer(StreamARN=stream_arn, ConsumerName="app-1")
    assert by_name["ConsumerDescription"] == by_arn


def test_list_stream_consumers_max_results_and_paginator(kinesis, stream):
    stream_arn = helpers.stream_arn(stream)
    assert kinesis.list_stream_consumers(StreamARN=stream_arn)["Consumers"] == []

    names = ["cons-a", "cons-b", "cons-c"]
    registered = {n: kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName=n)["Consumer"]
                  for n in names}

    full = kinesis.list_stream_consumers(StreamARN=stream_arn)
    assert "NextToken" not in full
    assert sorted(c["ConsumerName"] for c in full["Consumers"]) == names
    for c in full["Consumers"]:
        assert set(c) == {"ConsumerName", "ConsumerARN", "ConsumerStatus", "ConsumerCreationTimestamp"}, c
        assert c["ConsumerARN"] == registered[c["ConsumerName"]]["ConsumerARN"]
        assert c["ConsumerStatus"] in ("CREATING", "ACTIVE")
        _assert_recent(c["ConsumerCreationTimestamp"])

    # By hand: MaxResults=1 and NextToken.
    seen: list[str] = []
    resp = kinesis.list_stream_consumers(StreamARN=stream_arn, MaxResults=1)
    for _ in range(len(names) + 1):
        assert len(resp["Consumers"]) <= 1
        seen.extend(c["ConsumerName"] for c in resp["Consumers"])
        if not resp.get("NextToken"):
            break
        resp = kinesis.list_stream_consumers(StreamARN=stream_arn, MaxResults=1, NextToken=resp["NextToken"])
    assert sorted(seen) == names and len(seen) == len(set(seen)), seen

    # And through boto3's paginator (MaxResults as the page size).
    pages = list(
        kinesis.get_paginator("list_stream_consumers").paginate(
            StreamARN=stream_arn, PaginationConfig={"PageSize": 1}
        )
    )
    paged = [c["ConsumerName"] for p in pages for c in p["Consumers"]]
    assert sorted(paged) == names and len(paged) == 3, paged
    assert all(len(p["Consumers"]) <= 1 for p in pages)
    assert len([p for p in pages if p["Consumers"]]) == 3


def test_register_same_consumer_name_twice_resource_in_use(kinesis, stream):
    stream_arn = helpers.stream_arn(stream)
    kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="dup")
    _expect(
        lambda: kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="dup"),
        "ResourceInUseException",
    )
    consumers = kinesis.list_stream_consumers(StreamARN=stream_arn)["Consumers"]
    assert [c["ConsumerName"] for c in consumers] == ["dup"]


def test_deregister_consumer_by_arn_then_describe_not_found(kinesis, stream):
    stream_arn = helpers.stream_arn(stream)
    c = _register_active(kinesis, stream_arn, "short-lived")
    assert _summary(kinesis, stream)["ConsumerCount"] == 1

    kinesis.deregister_stream_consumer(ConsumerARN=c["ConsumerARN"])
    _wait_consumer_gone(kinesis, c["ConsumerARN"])
    _expect(
        lambda: kinesis.describe_stream_consumer(ConsumerARN=c["ConsumerARN"]),
        "ResourceNotFoundException",
    )
    _expect(
        lambda: kinesis.describe_stream_consumer(StreamARN=stream_arn, ConsumerName="short-lived"),
        "ResourceNotFoundException",
    )
    assert kinesis.list_stream_consumers(StreamARN=stream_arn)["Consumers"] == []
    assert _summary(kinesis, stream)["ConsumerCount"] == 0


def test_deregister_consumer_by_stream_arn_and_name(kinesis, stream):
    stream_arn = helpers.stream_arn(stream)
    c = _register_active(kinesis, stream_arn, "by-name")
    kinesis.deregister_stream_consumer(StreamARN=stream_arn, ConsumerName="by-name")
    _wait_consumer_gone(kinesis, c["ConsumerARN"])


def test_describe_stream_summary_consumer_count(kinesis, stream):
    stream_arn = helpers.stream_arn(stream)
    assert _summary(kinesis, stream)["ConsumerCount"] == 0
    kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="one")
    kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="two")
    assert _summary(kinesis, stream)["ConsumerCount"] == 2


def test_unknown_consumer_resource_not_found(kinesis, stream):
    stream_arn = helpers.stream_arn(stream)
    ghost = f"{stream_arn}/consumer/ghost:1700000000"
    _expect(lambda: kinesis.describe_stream_consumer(ConsumerARN=ghost), "ResourceNotFoundException")
    _expect(
        lambda: kinesis.describe_stream_consumer(StreamARN=stream_arn, ConsumerName="ghost"),
        "ResourceNotFoundException",
    )
    _expect(lambda: kinesis.deregister_stream_consumer(ConsumerARN=ghost), "ResourceNotFoundException")
    missing_stream = helpers.stream_arn(helpers.unique_name("no-such-stream"))
    _expect(
        lambda: kinesis.register_stream_consumer(StreamARN=missing_stream, ConsumerName="x"),
        "ResourceNotFoundException",
    )
    _expect(lambda: kinesis.list_stream_consumers(StreamARN=missing_stream), "ResourceNotFoundException")


def test_delete_stream_with_consumer_needs_enforce_consumer_deletion(kinesis, stream):
    stream_arn = helpers.stream_arn(stream)
    c = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="blocker")["Consumer"]

    _expect(lambda: kinesis.delete_stream(StreamName=stream), "ResourceInUseException")
    _expect(
        lambda: kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=False),
        "ResourceInUseException",
    )
    # Still there, consumer included.
    assert _summary(kinesis, stream)["StreamStatus"] == "ACTIVE"
    kinesis.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])

    kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    helpers.wait_gone(kinesis, stream)
    _expect(lambda: kinesis.describe_stream_consumer(ConsumerARN=c["ConsumerARN"]), "ResourceNotFoundException")


# ---------------------------------------------------------------------------
# SubscribeToShard


def test_subscribe_to_shard_trim_horizon_delivers_records(kinesis, kinesis_subscriber, stream):
    stream_arn = helpers.stream_arn(stream)
    c = _register_active(kinesis, stream_arn, "efo")
    payloads = [b"first", bytes(range(256)), b"\x00third\xff"]
    seqs = [kinesis.put_record(StreamName=stream, Data=p, PartitionKey=f"pk-{i}")["SequenceNumber"]
            for i, p in enumerate(payloads)]

    resp = kinesis_subscriber.subscribe_to_shard(
        ConsumerARN=c["ConsumerARN"], ShardId=SHARD0, StartingPosition={"Type": "TRIM_HORIZON"}
    )
    assert helpers.http_status(resp) == 200
    stream_ = resp["EventStream"]
    try:
        records, events = _collect_events(stream_, want=3)
    finally:
        stream_.close()

    assert [r["Data"] for r in records] == payloads, f"got {len(records)} records within the deadline"
    assert [r["SequenceNumber"] for r in records] == seqs
    assert [r["PartitionKey"] for r in records] == ["pk-0", "pk-1", "pk-2"]
    for r in records:
        _assert_recent(r["ApproximateArrivalTimestamp"])
    for ev in events:
        assert isinstance(ev["Records"], list)
        assert SEQ_RE.match(ev["ContinuationSequenceNumber"]), ev
        assert isinstance(ev["MillisBehindLatest"], int) and ev["MillisBehindLatest"] >= 0, ev
    # The continuation point of the event carrying the last record is that record or later.
    last = next(ev for ev in reversed(events) if ev["Records"])
    assert int(last["ContinuationSequenceNumber"]) >= int(seqs[-1])


def test_subscribe_to_shard_latest_delivers_new_record(kinesis, kinesis_subscriber, stream):
    stream_arn = helpers.stream_arn(stream)
    c = _register_active(kinesis, stream_arn, "efo-latest")
    kinesis.put_record(StreamName=stream, Data=b"before-subscription", PartitionKey="k")

    resp = kinesis_subscriber.subscribe_to_shard(
        ConsumerARN=c["ConsumerARN"], ShardId=SHARD0, StartingPosition={"Type": "LATEST"}
    )
    stream_ = resp["EventStream"]
    try:
        seq = kinesis.put_record(StreamName=stream, Data=b"after-subscription", PartitionKey="k")["SequenceNumber"]
        records, events = _collect_events(stream_, want=1)
    finally:
        stream_.close()
    assert [r["Data"] for r in records] == [b"after-subscription"], records
    assert records[0]["SequenceNumber"] == seq
    assert all(SEQ_RE.match(ev["ContinuationSequenceNumber"]) for ev in events)
    assert all("MillisBehindLatest" in ev for ev in events)


def test_subscribe_to_shard_unknown_consumer_resource_not_found(kinesis_subscriber, stream):
    ghost = f"{helpers.stream_arn(stream)}/consumer/ghost:1700000000"
    _expect(
        lambda: kinesis_subscriber.subscribe_to_shard(
            ConsumerARN=ghost, ShardId=SHARD0, StartingPosition={"Type": "TRIM_HORIZON"}
        ),
        "ResourceNotFoundException",
    )


# ---------------------------------------------------------------------------
# Enhanced monitoring


def _describe_metrics(kinesis, name: str) -> list[str]:
    em = kinesis.describe_stream(StreamName=name)["StreamDescription"]["EnhancedMonitoring"]
    assert len(em) == 1, em
    return sorted(em[0]["ShardLevelMetrics"])


def test_enable_and_disable_enhanced_monitoring(kinesis, stream):
    resp = kinesis.enable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["IncomingBytes", "OutgoingRecords"])
    assert resp["StreamName"] == stream
    assert resp["CurrentShardLevelMetrics"] == []
    assert sorted(resp["DesiredShardLevelMetrics"]) == ["IncomingBytes", "OutgoingRecords"]
    assert _describe_metrics(kinesis, stream) == ["IncomingBytes", "OutgoingRecords"]
    summary_em = _summary(kinesis, stream)["EnhancedMonitoring"]
    assert sorted(summary_em[0]["ShardLevelMetrics"]) == ["IncomingBytes", "OutgoingRecords"]

    resp = kinesis.disable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["IncomingBytes"])
    assert sorted(resp["CurrentShardLevelMetrics"]) == ["IncomingBytes", "OutgoingRecords"]
    assert resp["DesiredShardLevelMetrics"] == ["OutgoingRecords"]
    assert _describe_metrics(kinesis, stream) == ["OutgoingRecords"]

    resp = kinesis.disable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["OutgoingRecords"])
    assert resp["DesiredShardLevelMetrics"] == []
    assert _describe_metrics(kinesis, stream) == []


def test_enhanced_monitoring_all_expands_to_every_metric(kinesis, stream):
    resp = kinesis.enable_enhanced_monitoring(StreamARN=helpers.stream_arn(stream), ShardLevelMetrics=["ALL"])
    assert resp["CurrentShardLevelMetrics"] == []
    assert sorted(resp["DesiredShardLevelMetrics"]) == ALL_METRICS
    assert _describe_metrics(kinesis, stream) == ALL_METRICS

    resp = kinesis.disable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["ALL"])
    assert sorted(resp["CurrentShardLevelMetrics"]) == ALL_METRICS
    assert resp["DesiredShardLevelMetrics"] == []
    assert _describe_metrics(kinesis, stream) == []


def test_enhanced_monitoring_unknown_metric_refused(kinesis_raw_params, stream):
    """ShardLevelMetrics members are an enum: a value outside it fails the request's
    validation (ValidationException), and nothing is enabled."""
    _expect(
        lambda: kinesis_raw_params.enable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["BogusMetric"]),
        "ValidationException",
    )
    assert _describe_metrics(kinesis_raw_params, stream) == []


def test_enhanced_monitoring_unknown_metric_refused_with_a_valid_one(kinesis_raw_params, stream):
    """A bad name next to a valid one refuses the whole request."""
    with pytest.raises(ClientError) as ei:
        kinesis_raw_params.enable_enhanced_monitoring(
            StreamName=stream, ShardLevelMetrics=["IncomingBytes", "BogusMetric"]
        )
    assert helpers.http_status(ei.value) == 400
    assert _describe_metrics(kinesis_raw_params, stream) == []


# ---------------------------------------------------------------------------
# Stream mode, maximum record size, warm throughput


def test_update_stream_mode_on_demand_then_provisioned(kinesis, stream):
    arn = helpers.stream_arn(stream)
    assert _summary(kinesis, stream)["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}

    assert helpers.http_status(
        kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    ) == 200
    # The switch is asynchronous (UPDATING, then ACTIVE).
    helpers.wait_active(kinesis, stream)
    s = _poll(lambda: _summary(kinesis, stream),
              lambda s: s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"} and s["StreamStatus"] == "ACTIVE",
              "stream mode ON_DEMAND")
    assert kinesis.describe_stream(StreamName=stream)["StreamDescription"]["StreamModeDetails"] == s["StreamModeDetails"]

    kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    helpers.wait_active(kinesis, stream)
    _poll(lambda: _summary(kinesis, stream),
          lambda s: s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"} and s["StreamStatus"] == "ACTIVE",
          "stream mode PROVISIONED")


def test_update_stream_mode_unknown_stream(kinesis):
    arn = helpers.stream_arn(helpers.unique_name("no-such-stream"))
    _expect(
        lambda: kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"}),
        "ResourceNotFoundException",
    )


def test_default_max_record_size_refuses_1_5_mib_record(kinesis, stream):
    assert _summary(kinesis, stream)["MaxRecordSizeInKiB"] == 1024
    data = b"x" * (1536 * 1024)
    e = _expect(
        lambda: kinesis.put_record(StreamName=stream, Data=data, PartitionKey="big"),
        "InvalidArgumentException", "ValidationException",
    )
    assert e.response["Error"]["Message"]


def test_update_max_record_size_allows_larger_records(kinesis, stream):
    arn = helpers.stream_arn(stream)
    assert helpers.http_status(kinesis.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=2048)) == 200
    helpers.wait_active(kinesis, stream)
    s = _poll(lambda: _summary(kinesis, stream), lambda s: s.get("MaxRecordSizeInKiB") == 2048,
              "MaxRecordSizeInKiB 2048")
    assert s["StreamStatus"] == "ACTIVE"

    data = bytes(range(256)) * (1536 * 4)  # 1.5 MiB
    assert len(data) == 1536 * 1024
    put = kinesis.put_record(StreamName=stream, Data=data, PartitionKey="big")
    assert put["ShardId"] == SHARD0 and SEQ_RE.match(put["SequenceNumber"])

    got = helpers.read_from(kinesis, stream, SHARD0, want=1)
    assert len(got) == 1 and got[0]["Data"] == data

    # Over the new maximum is still refused.
    _expect(
        lambda: kinesis.put_record(StreamName=stream, Data=b"y" * (2048 * 1024 + 1), PartitionKey="big"),
        "InvalidArgumentException", "ValidationException",
    )


@pytest.mark.parametrize("kib", [0, 1023, 10241, 20000])
def test_update_max_record_size_out_of_range_validation(kinesis_raw_params, stream, kib):
    _expect(
        lambda: kinesis_raw_params.update_max_record_size(StreamARN=helpers.stream_arn(stream), MaxRecordSizeInKiB=kib),
        "ValidationException",
    )
    assert _summary(kinesis_raw_params, stream)["MaxRecordSizeInKiB"] == 1024


def test_update_max_record_size_bounds_accepted(kinesis, stream):
    arn = helpers.stream_arn(stream)
    for kib in (10240, 1024):
        kinesis.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=kib)
        helpers.wait_active(kinesis, stream)
        _poll(lambda: _summary(kinesis, stream), lambda s, k=kib: s.get("MaxRecordSizeInKiB") == k,
              f"MaxRecordSizeInKiB {kib}")


@pytest.fixture
def billing_commitment(kinesis):
    """UpdateStreamWarmThroughput requires MinimumThroughputBillingCommitment ENABLED on the
    account; enable it for the test and put the previous status back afterwards."""
    before = kinesis.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"]
    kinesis.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    yield
    if before == "DISABLED":
        kinesis.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})


def test_update_stream_warm_throughput_on_demand(kinesis, stream_name, billing_commitment):
    helpers.create_stream(kinesis, stream_name, shard_count=None, on_demand=True)
    arn = helpers.stream_arn(stream_name)
    resp = kinesis.update_stream_warm_throughput(StreamARN=arn, WarmThroughputMiBps=100)
    assert resp["StreamARN"] == arn
    assert resp["StreamName"] == stream_name
    wt = resp["WarmThroughput"]
    assert set(wt) == {"TargetMiBps", "CurrentMiBps"}, wt
    assert wt["TargetMiBps"] == 100
    assert isinstance(wt["CurrentMiBps"], int) and wt["CurrentMiBps"] >= 0
    helpers.wait_active(kinesis, stream_name)


def test_describe_stream_summary_reports_warm_throughput(kinesis, stream_name, billing_commitment):
    helpers.create_stream(kinesis, stream_name, shard_count=None, on_demand=True)
    kinesis.update_stream_warm_throughput(StreamName=stream_name, WarmThroughputMiBps=64)
    helpers.wait_active(kinesis, stream_name)
    s = _poll(lambda: _summary(kinesis, stream_name), lambda s: "WarmThroughput" in s,
              "WarmThroughput in DescribeStreamSummary", deadline_s=10)
    assert s["WarmThroughput"]["TargetMiBps"] == 64
    assert isinstance(s["WarmThroughput"].get("CurrentMiBps"), int)


def test_update_stream_warm_throughput_provisioned_refused(kinesis, stream, billing_commitment):
    _expect(
        lambda: kinesis.update_stream_warm_throughput(StreamARN=helpers.stream_arn(stream), WarmThroughputMiBps=100),
        "InvalidArgumentException",
    )


# ---------------------------------------------------------------------------
# Encryption


def test_start_stream_encryption_refused_and_stream_unencrypted(kinesis, stream):
    e = _expect(
        lambda: kinesis.start_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="alias/aws/kinesis"),
        "InvalidArgumentException",
    )
    assert e.response["Error"]["Message"], "the refusal explains itself"
    d = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    assert d["StreamStatus"] == "ACTIVE"
    assert d["EncryptionType"] == "NONE"
    assert "KeyId" not in d


def test_stop_stream_encryption_on_unencrypted_stream(kinesis, stream):
    resp = kinesis.stop_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    assert helpers.http_status(resp) == 200
    helpers.wait_active(kinesis, stream)
    assert kinesis.describe_stream(StreamName=stream)["StreamDescription"]["EncryptionType"] == "NONE"
    assert _summary(kinesis, stream)["EncryptionType"] == "NONE"


def test_stream_encryption_unknown_stream(kinesis):
    missing = helpers.unique_name("no-such-stream")
    _expect(
        lambda: kinesis.stop_stream_encryption(StreamName=missing, EncryptionType="KMS", KeyId="alias/aws/kinesis"),
        "ResourceNotFoundException",
    )
    _expect(
        lambda: kinesis.start_stream_encryption(StreamName=missing, EncryptionType="KMS", KeyId="alias/aws/kinesis"),
        "ResourceNotFoundException",
    )


# ---------------------------------------------------------------------------
# Resource policies


def _policy(arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Id": "writePolicy",
        "Statement": [{
            "Sid": "writestatement",
            "Effect": "Allow",
            "Principal": {"AWS": "123456789012"},
            "Action": ["kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:PutRecord",
                       "kinesis:PutRecords"],
            "Resource": arn,
        }],
    })


def test_put_get_delete_resource_policy(kinesis, stream):
    arn = helpers.stream_arn(stream)
    assert json.loads(kinesis.get_resource_policy(ResourceARN=arn)["Policy"]) == {}

    policy = _policy(arn)
    assert helpers.http_status(kinesis.put_resource_policy(ResourceARN=arn, Policy=policy)) == 200
    got = kinesis.get_resource_policy(ResourceARN=arn)["Policy"]
    assert isinstance(got, str)
    assert json.loads(got) == json.loads(policy)

    assert helpers.http_status(kinesis.delete_resource_policy(ResourceARN=arn)) == 200
    assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"


def test_put_resource_policy_on_consumer(kinesis, stream):
    c = kinesis.register_stream_consumer(StreamARN=helpers.stream_arn(stream), ConsumerName="with-policy")["Consumer"]
    _wait_consumer_active(kinesis, c["ConsumerARN"])
    policy = _policy(c["ConsumerARN"])
    kinesis.put_resource_policy(ResourceARN=c["ConsumerARN"], Policy=policy)
    assert json.loads(kinesis.get_resource_policy(ResourceARN=c["ConsumerARN"])["Policy"]) == json.loads(policy)
    # The stream's own policy is separate.
    assert kinesis.get_resource_policy(ResourceARN=helpers.stream_arn(stream))["Policy"] == "{}"


@pytest.mark.parametrize("policy", ["not json", "{\"Version\": "])
def test_put_resource_policy_not_json_invalid_argument(kinesis, stream, policy):
    arn = helpers.stream_arn(stream)
    _expect(lambda: kinesis.put_resource_policy(ResourceARN=arn, Policy=policy), "InvalidArgumentException")
    assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"


def test_resource_policy_unknown_arn_resource_not_found(kinesis):
    arn = helpers.stream_arn(helpers.unique_name("no-such-stream"))
    _expect(lambda: kinesis.put_resource_policy(ResourceARN=arn, Policy=_policy(arn)), "ResourceNotFoundException")
    _expect(lambda: kinesis.get_resource_policy(ResourceARN=arn), "ResourceNotFoundException")
    _expect(lambda: kinesis.delete_resource_policy(ResourceARN=arn), "ResourceNotFoundException")


# ---------------------------------------------------------------------------
# Account


def test_describe_account_settings_shape(kinesis):
    resp = kinesis.describe_account_settings()
    c = resp["MinimumThroughputBillingCommitment"]
    assert c["Status"] in ("ENABLED", "DISABLED", "ENABLED_UNTIL_EARLIEST_ALLOWED_END"), c
    if c["Status"] == "DISABLED":
        assert "StartedAt" not in c or isinstance(c["StartedAt"], dt.datetime)
    else:
        _assert_recent(c["StartedAt"], slack_s=10 * 365 * 86400)


def test_update_account_settings_enable_then_disable(kinesis):
    before = kinesis.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"]
    try:
        resp = kinesis.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
        c = resp["MinimumThroughputBillingCommitment"]
        assert c["Status"] == "ENABLED"
        assert isinstance(c["StartedAt"], dt.datetime) and c["StartedAt"].tzinfo is not None
        if before == "DISABLED":
            _assert_recent(c["StartedAt"])
        described = kinesis.describe_account_settings()["MinimumThroughputBillingCommitment"]
        assert described["Status"] == "ENABLED"
        assert described["StartedAt"] == c["StartedAt"]
    finally:
        resp = kinesis.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})
    # Ending a commitment before its earliest allowed end keeps it until then.
    c = resp["MinimumThroughputBillingCommitment"]
    assert c["Status"] in ("DISABLED", "ENABLED_UNTIL_EARLIEST_ALLOWED_END"), c
    assert kinesis.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"] == c["Status"]


def test_update_account_settings_bad_status_validation(kinesis_raw_params):
    _expect(
        lambda: kinesis_raw_params.update_account_settings(MinimumThroughputBillingCommitment={"Status": "MAYBE"}),
        "ValidationException",
    )


def test_describe_limits_shape(kinesis, stream_name):
    resp = kinesis.describe_limits()
    for key in ("ShardLimit", "OpenShardCount", "OnDemandStreamCount", "OnDemandStreamCountLimit"):
        assert isinstance(resp[key], int) and not isinstance(resp[key], bool), f"{key}: {resp.get(key)!r}"
        assert resp[key] >= 0
    assert resp["OpenShardCount"] <= resp["ShardLimit"]
    assert resp["OnDemandStreamCount"] <= resp["OnDemandStreamCountLimit"]

    helpers.create_stream(kinesis, stream_name, shard_count=None, on_demand=True)
    after = kinesis.describe_limits()
    assert after["OnDemandStreamCount"] >= 1
    assert after["OpenShardCount"] >= 4
    assert after["OnDemandStreamCountLimit"] == resp["OnDemandStreamCountLimit"]
