"""Shared helpers for the Kinesis compatibility suite: raw HTTP, SigV4 signing,
CBOR decoding that keeps tags, stream set-up and bounded read loops."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from unittest import mock
from urllib.parse import urlsplit

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
REGION = "us-east-1"
TARGET_PREFIX = "Kinesis_20131202."
JSON_CT = "application/x-amz-json-1.1"
CBOR_CT = "application/x-amz-cbor-1.1"
MAX_HASH_KEY = 2**128 - 1
# The credentials every client in the suite signs with (the auth node knows them).
KEY_ID = "AKIDTEST"
SECRET = "secret123"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SHARD_ID_RE = re.compile(r"^shardId-\d{12}$")
SEQ_RE = re.compile(r"^(0|[1-9]\d{0,128})$")


def unique_name(prefix: str = "t") -> str:
    """A stream name unique to this run, inside [a-zA-Z0-9_.-]{1,128}."""
    prefix = re.sub(r"[^a-zA-Z0-9_.-]", "-", prefix)[:60]
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def stream_arn(name: str) -> str:
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


# ---------------------------------------------------------------------------
# Streams


def wait_active(kinesis, name: str, max_attempts: int = 60) -> None:
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": max_attempts}
    )


def wait_gone(kinesis, name: str, max_attempts: int = 60) -> None:
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": max_attempts}
    )


def create_stream(kinesis, name: str, shard_count: int | None = 1, on_demand: bool = False) -> dict:
    """Create a stream, wait for ACTIVE with the stream_exists waiter, return its description."""
    kwargs: dict = {"StreamName": name}
    if on_demand:
        kwargs["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
    if shard_count is not None:
        kwargs["ShardCount"] = shard_count
    kinesis.create_stream(**kwargs)
    wait_active(kinesis, name)
    return kinesis.describe_stream(StreamName=name)["StreamDescription"]


def list_all_shards(kinesis, name: str) -> list[dict]:
    shards: list[dict] = []
    resp = kinesis.list_shards(StreamName=name)
    shards.extend(resp["Shards"])
    while resp.get("NextToken"):
        resp = kinesis.list_shards(NextToken=resp["NextToken"])
        shards.extend(resp["Shards"])
    return shards


def md5_hash_key(partition_key: str) -> int:
    """Kinesis maps a partition key to a 128-bit hash key with MD5."""
    return int(hashlib.md5(partition_key.encode("utf-8")).hexdigest(), 16)


def shard_owning(shards: list[dict], hash_key: int) -> str:
    for s in shards:
        r = s["HashKeyRange"]
        if int(r["StartingHashKey"]) <= hash_key <= int(r["EndingHashKey"]):
            return s["ShardId"]
    raise AssertionError(f"no shard owns hash key {hash_key}")


def error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def http_status(exc_or_resp) -> int:
    resp = exc_or_resp.response if isinstance(exc_or_resp, ClientError) else exc_or_resp
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def request_id_header(exc_or_resp) -> str | None:
    resp = exc_or_resp.response if isinstance(exc_or_resp, ClientError) else exc_or_resp
    return resp["ResponseMetadata"].get("HTTPHeaders", {}).get("x-amzn-requestid")


def read_shard(
    kinesis,
    shard_iterator: str,
    want: int,
    deadline_s: float = 30.0,
    limit: int | None = None,
    drain: bool = False,
) -> list[dict]:
    """GetRecords from an iterator until `want` records are read or the deadline passes.

    With drain=True it goes on after `want` until a response comes back empty with
    MillisBehindLatest 0, so records beyond the expected ones are seen too.

    A ProvisionedThroughputExceededException on a read (Kinesis allows 5 GetRecords
    per second per shard) is waited out briefly, as any Kinesis consumer does.
    """
    out: list[dict] = []
    it = shard_iterator
    deadline = time.monotonic() + deadline_s
    while it and time.monotonic() < deadline:
        if len(out) >= want and not drain:
            break
        kwargs = {"ShardIterator": it}
        if limit is not None:
            kwargs["Limit"] = limit
        try:
            resp = kinesis.get_records(**kwargs)
        except ClientError as e:
            if error_code(e) == "ProvisionedThroughputExceededException":
                time.sleep(0.25)
                continue
            raise
        out.extend(resp["Records"])
        it = resp.get("NextShardIterator")
        if not resp["Records"]:
            if drain and len(out) >= want and resp.get("MillisBehindLatest", 0) == 0:
                break
            time.sleep(0.2)
    return out


def read_from(kinesis, name: str, shard_id: str, want: int, iterator_type: str = "TRIM_HORIZON",
              deadline_s: float = 30.0, drain: bool = False, **iterator_kwargs) -> list[dict]:
    it = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard_id, ShardIteratorType=iterator_type, **iterator_kwargs
    )["ShardIterator"]
    return read_shard(kinesis, it, want, deadline_s=deadline_s, drain=drain)


def throttle_shard(kinesis, name: str, partition_key: str, tag: str, max_batches: int = 8,
                   deadline_s: float = 20.0) -> list[tuple[list[bytes], dict]]:
    """Send PutRecords batches of 500 small records with one partition key, back to back,
    until a batch reports a throttled entry (or max_batches/deadline is reached).

    Returns [(payloads, response), ...] for every batch sent.
    """
    sent: list[tuple[list[bytes], dict]] = []
    deadline = time.monotonic() + deadline_s
    for b in range(max_batches):
        if time.monotonic() > deadline:
            break
        payloads = [f"{tag}-{b:02d}-{i:04d}".encode() for i in range(500)]
        resp = kinesis.put_records(
            StreamName=name,
            Records=[{"Data": p, "PartitionKey": partition_key} for p in payloads],
        )
        sent.append((payloads, resp))
        if resp.get("FailedRecordCount", 0) > 0:
            break
    return sent


# ---------------------------------------------------------------------------
# Raw HTTP


@dataclass
class RawResponse:
    status: int
    headers: dict = field(default_factory=dict)  # lower-cased names
    body: bytes = b""

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def cbor(self):
        return cbor_decode(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def raw_post(endpoint: str, body: bytes, headers: dict, timeout: float = 30.0, path: str = "/") -> RawResponse:
    u = urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return RawResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def raw_call(endpoint: str, operation: str, body: bytes, content_type: str = JSON_CT,
             extra_headers: dict | None = None, timeout: float = 30.0, sign: bool = True) -> RawResponse:
    """POST one operation. Signed with SigV4 (KEY_ID/SECRET) like any SDK request, unless
    sign=False."""
    if sign:
        headers = sign_headers(endpoint, operation, body, KEY_ID, SECRET, content_type=content_type)
    else:
        headers = {"Content-Type": content_type, "X-Amz-Target": TARGET_PREFIX + operation}
    headers.update(extra_headers or {})
    return raw_post(endpoint, body, headers, timeout=timeout)


def raw_json(endpoint: str, operation: str, payload: dict, **kw) -> RawResponse:
    return raw_call(endpoint, operation, json.dumps(payload).encode(), JSON_CT, **kw)


def error_type_of(body: dict) -> str:
    """`__type` may carry a namespace prefix ("ns#Name"); clients keep the part after '#'."""
    return str(body.get("__type", "")).rsplit("#", 1)[-1]


def sign_headers(endpoint: str, operation: str, payload: bytes, access_key: str, secret_key: str,
                 when=None, content_type: str = JSON_CT) -> dict:
    """SigV4 headers (Authorization, X-Amz-Date, ...) computed by botocore's SigV4Auth.

    `when` (a UTC datetime) replaces the signing clock, for stale-date requests.
    """
    req = AWSRequest(
        method="POST",
        url=endpoint.rstrip("/") + "/",
        data=payload,
        headers={"Content-Type": content_type, "X-Amz-Target": TARGET_PREFIX + operation},
    )
    signer = SigV4Auth(Credentials(access_key, secret_key), "kinesis", REGION)
    if when is None:
        signer.add_auth(req)
    else:
        naive = when.replace(tzinfo=None)
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=naive):
            signer.add_auth(req)
    return dict(req.headers.items())


# ---------------------------------------------------------------------------
# CBOR decoding that keeps every semantic tag as a Tag (so tag 1 with an integer
# millisecond value can be checked as sent, without epoch-seconds interpretation).


@dataclass(frozen=True)
class Tag:
    tag: int
    value: object


class _Break:
    pass


_BREAK = _Break()


def cbor_decode(data: bytes):
    value, pos = _cbor_item(memoryview(data), 0)
    if pos != len(data):
        raise ValueError(f"trailing bytes after CBOR item at {pos} of {len(data)}")
    return value


def _cbor_arg(buf, pos, info):
    if info < 24:
        return info, pos
    if info == 24:
        return buf[pos], pos + 1
    if info == 25:
        return struct.unpack_from(">H", buf, pos)[0], pos + 2
    if info == 26:
        return struct.unpack_from(">I", buf, pos)[0], pos + 4
    if info == 27:
        return struct.unpack_from(">Q", buf, pos)[0], pos + 8
    if info == 31:
        return None, pos  # indefinite length
    raise ValueError(f"bad CBOR additional info {info}")


def _cbor_item(buf, pos):
    ib = buf[pos]
    pos += 1
    major, info = ib >> 5, ib & 0x1F
    if major == 7:
        if info == 31:
            return _BREAK, pos
        if info == 20:
            return False, pos
        if info == 21:
            return True, pos
        if info in (22, 23):
            return None, pos
        if info == 25:
            return _half(struct.unpack_from(">H", buf, pos)[0]), pos + 2
        if info == 26:
            return struct.unpack_from(">f", buf, pos)[0], pos + 4
        if info == 27:
            return struct.unpack_from(">d", buf, pos)[0], pos + 8
        if info < 24:
            return ("simple", info), pos
        return ("simple", buf[pos]), pos + 1
    arg, pos = _cbor_arg(buf, pos, info)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        if arg is None:
            chunks = []
            while True:
                item, pos = _cbor_item(buf, pos)
                if item is _BREAK:
                    break
                chunks.append(item)
            return (b"".join(chunks) if major == 2 else "".join(chunks)), pos
        raw = bytes(buf[pos:pos + arg])
        if len(raw) != arg:
            raise ValueError("truncated CBOR string")
        return (raw if major == 2 else raw.decode("utf-8")), pos + arg
    if major == 4:
        items = []
        if arg is None:
            while True:
                item, pos = _cbor_item(buf, pos)
                if item is _BREAK:
                    break
                items.append(item)
        else:
            for _ in range(arg):
                item, pos = _cbor_item(buf, pos)
                items.append(item)
        return items, pos
    if major == 5:
        out = {}
        n = 0
        while arg is None or n < arg:
            k, pos = _cbor_item(buf, pos)
            if k is _BREAK:
                break
            v, pos = _cbor_item(buf, pos)
            out[k] = v
            n += 1
        return out, pos
    if major == 6:
        v, pos = _cbor_item(buf, pos)
        return Tag(arg, v), pos
    raise ValueError(f"bad CBOR major type {major}")


def _half(h: int) -> float:
    exp = (h >> 10) & 0x1F
    mant = h & 0x3FF
    if exp == 0:
        val = mant * 2.0**-24
    elif exp == 31:
        val = float("inf") if mant == 0 else float("nan")
    else:
        val = (mant + 1024) * 2.0 ** (exp - 25)
    return -val if h & 0x8000 else val
