// The AWS SDK for JavaScript v3 Kinesis client against a streamd Kinesis endpoint.
//
// The client keeps its default request handler, NodeHttp2Handler, so against an http:// endpoint
// every call goes over cleartext HTTP/2 with prior knowledge.
//
// Usage: KINESIS_ENDPOINT=http://127.0.0.1:4567 node kinesis-sdk-test.mjs
//
// Steps: CreateStream (1 shard), DescribeStreamSummary until ACTIVE, PutRecord, PutRecords
// (5 records), GetShardIterator TRIM_HORIZON, GetRecords until all 6 records are back with the
// same bytes, keys and sequence numbers, DeleteStream. Exits 0 when every step passed, 1 with
// the failing step and error otherwise, 2 on a usage error, 3 when the whole run exceeds
// KINESIS_TEST_TIMEOUT_MS (default 60000).

import { randomBytes, randomUUID } from "node:crypto";
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  PutRecordCommand,
  PutRecordsCommand,
} from "@aws-sdk/client-kinesis";

const endpoint = process.env.KINESIS_ENDPOINT;
if (!endpoint) {
  console.error("KINESIS_ENDPOINT is not set (e.g. http://127.0.0.1:4567)");
  process.exit(2);
}
const overallMs = Number(process.env.KINESIS_TEST_TIMEOUT_MS ?? 60_000);
const callMs = 15_000;

const overall = setTimeout(() => {
  console.error(`FAIL: the run did not finish within ${overallMs} ms (last step: ${step})`);
  process.exit(3);
}, overallMs);

// This suite runs on Node 20; the SDK's notice about its future Node requirement is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const client = new KinesisClient({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "secret123" },
  maxAttempts: 1,
});

let step = "start";
const stream = `js-sdk-${randomUUID().slice(0, 12)}`;
let created = false;

/** Sends one command, bounded by its own timeout. */
function send(command) {
  return client.send(command, { abortSignal: AbortSignal.timeout(callMs) });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function check(cond, message) {
  if (!cond) {
    throw new Error(`check failed: ${message}`);
  }
}

function hex(bytes) {
  return Buffer.from(bytes).toString("hex");
}

async function run() {
  const handler = await client.config.requestHandler;
  const handlerName = handler?.constructor?.name;
  console.log(`endpoint ${endpoint}, request handler ${handlerName}`);
  check(handlerName === "NodeHttp2Handler", `default handler is NodeHttp2Handler, got ${handlerName}`);

  step = "CreateStream";
  await send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
  created = true;
  console.log(`ok ${step} ${stream}`);

  step = "DescribeStreamSummary until ACTIVE";
  const activeBy = Date.now() + 30_000;
  let summary;
  for (;;) {
    summary = (await send(new DescribeStreamSummaryCommand({ StreamName: stream })))
      .StreamDescriptionSummary;
    if (summary?.StreamStatus === "ACTIVE") {
      break;
    }
    check(Date.now() < activeBy, `stream ACTIVE within 30s, status ${summary?.StreamStatus}`);
    await sleep(200);
  }
  check(summary.OpenShardCount === 1, `one open shard, got ${summary.OpenShardCount}`);
  console.log(`ok ${step}`);

  // Random bytes: not valid UTF-8, so the blob encoding is exercised.
  const puts = [];

  step = "PutRecord";
  const single = { key: "single", data: new Uint8Array(randomBytes(64)) };
  const put = await send(
    new PutRecordCommand({ StreamName: stream, PartitionKey: single.key, Data: single.data }),
  );
  check(typeof put.ShardId === "string" && put.ShardId.length > 0, `a ShardId: ${put.ShardId}`);
  check(/^\d+$/.test(put.SequenceNumber ?? ""), `a SequenceNumber: ${put.SequenceNumber}`);
  puts.push({ ...single, seq: put.SequenceNumber });
  const shardId = put.ShardId;
  console.log(`ok ${step} ${shardId} ${put.SequenceNumber}`);

  step = "PutRecords";
  const batch = Array.from({ length: 5 }, (_, i) => ({
    key: `key-${i}`,
    data: new Uint8Array(randomBytes(1 + i * 50)),
  }));
  const putMany = await send(
    new PutRecordsCommand({
      StreamName: stream,
      Records: batch.map((r) => ({ PartitionKey: r.key, Data: r.data })),
    }),
  );
  check(putMany.FailedRecordCount === 0, `no failed records: ${JSON.stringify(putMany.Records)}`);
  check(putMany.Records.length === batch.length, `one result per record`);
  putMany.Records.forEach((result, i) => {
    check(result.ShardId === shardId, `record ${i} in ${shardId}, got ${result.ShardId}`);
    check(/^\d+$/.test(result.SequenceNumber ?? ""), `record ${i} SequenceNumber`);
    puts.push({ ...batch[i], seq: result.SequenceNumber });
  });
  console.log(`ok ${step} ${putMany.Records.length} records`);

  step = "GetShardIterator TRIM_HORIZON";
  let iterator = (
    await send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: shardId,
        ShardIteratorType: "TRIM_HORIZON",
      }),
    )
  ).ShardIterator;
  check(typeof iterator === "string" && iterator.length > 0, "a ShardIterator");
  console.log(`ok ${step}`);

  step = "GetRecords";
  const got = [];
  const readBy = Date.now() + 20_000;
  while (got.length < puts.length) {
    check(Date.now() < readBy, `${puts.length} records within 20s, got ${got.length}`);
    const out = await send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 100 }));
    got.push(...out.Records);
    check(typeof out.NextShardIterator === "string", "a NextShardIterator on an open shard");
    iterator = out.NextShardIterator;
    if (out.Records.length === 0) {
      await sleep(100);
    }
  }
  check(got.length === puts.length, `exactly ${puts.length} records, got ${got.length}`);
  puts.forEach((want, i) => {
    const r = got[i];
    check(r.SequenceNumber === want.seq, `record ${i} seq ${want.seq}, got ${r.SequenceNumber}`);
    check(r.PartitionKey === want.key, `record ${i} key ${want.key}, got ${r.PartitionKey}`);
    check(r.Data instanceof Uint8Array, `record ${i} Data is bytes`);
    check(hex(r.Data) === hex(want.data), `record ${i} data ${hex(want.data)}, got ${hex(r.Data)}`);
    check(r.ApproximateArrivalTimestamp instanceof Date, `record ${i} arrival timestamp`);
  });
  console.log(`ok ${step} ${got.length} records, bytes identical`);

  step = "DeleteStream";
  await send(new DeleteStreamCommand({ StreamName: stream }));
  created = false;
  console.log(`ok ${step}`);
}

function describe(err) {
  const parts = [`${err?.name ?? "Error"}: ${err?.message ?? err}`];
  if (err?.$metadata) {
    parts.push(`metadata ${JSON.stringify(err.$metadata)}`);
  }
  if (err?.$response?.statusCode) {
    parts.push(`HTTP ${err.$response.statusCode}`);
  }
  if (err?.code) {
    parts.push(`code ${err.code}`);
  }
  let cause = err?.cause;
  while (cause) {
    parts.push(`caused by ${cause.name ?? "Error"}: ${cause.message ?? cause}`);
    cause = cause.cause;
  }
  return parts.join("\n  ");
}

let code = 0;
try {
  await run();
  console.log("PASS: every step passed");
} catch (err) {
  code = 1;
  console.error(`FAIL at ${step}: ${describe(err)}`);
  if (created) {
    try {
      await send(new DeleteStreamCommand({ StreamName: stream, EnforceConsumerDeletion: true }));
    } catch (cleanup) {
      console.error(`cleanup DeleteStream failed: ${describe(cleanup)}`);
    }
  }
} finally {
  // Closes the HTTP/2 session so the process can exit.
  client.destroy();
  clearTimeout(overall);
}
process.exitCode = code;
