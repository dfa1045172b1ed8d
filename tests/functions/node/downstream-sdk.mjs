// A handler that calls AWS through the AWS SDK for JavaScript v3: S3 or DynamoDB at the
// endpoint DS_ENDPOINT names (the test's stand-in, moto behind a proxy that delays each answer),
// for lambda-meter's downstream figures.
//
// Each invoke returns what it read back and every HTTP request the SDK sent, as the SDK saw it
// (a middleware of the deserialize step, which runs once per attempt, retries included), so
// that the test can set them against the requests the stand-in received and the calls the
// record counts.
import { DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

const endpoint = process.env.DS_ENDPOINT;
const sent = [];

// The clients are made at init, outside the handler, as functions usually make them; their
// connections are opened by the first call and kept.
const s3Default = new S3Client({ endpoint, forcePathStyle: true });
// One that sends every body after a `100 Continue`, as boto3 sends PutObject's (this SDK does
// for bodies of 2 MB or more).
const s3Continue = new S3Client({ endpoint, forcePathStyle: true, expectContinueHeader: true });
const dynamodb = new DynamoDBClient({ endpoint });
for (const client of [s3Default, s3Continue, dynamodb]) {
  client.middlewareStack.add(
    (next) => async (args) => {
      const { method, path, query } = args.request;
      const q = new URLSearchParams(query ?? {}).toString();
      sent.push(`${method} ${path}${q ? `?${q}` : ""}`);
      return next(args);
    },
    { step: "deserialize", name: "countSent" },
  );
}

export const handler = async (event) => {
  sent.length = 0;
  const { prefix, items, size } = event;
  const read = [];
  for (let i = 0; i < items; i++) {
    const key = `${prefix}-${i}`;
    const body = `${key}:`.repeat(size).slice(0, size);
    if (event.service === "s3") {
      const s3 = event.expectContinue ? s3Continue : s3Default;
      await s3.send(new PutObjectCommand({ Bucket: event.bucket, Key: key, Body: body }));
      const got = await s3.send(new GetObjectCommand({ Bucket: event.bucket, Key: key }));
      const text = await got.Body.transformToString();
      read.push(text === body ? text.length : `wrong body for ${key}`);
    } else if (event.service === "dynamodb") {
      await dynamodb.send(
        new PutItemCommand({ TableName: event.table, Item: { pk: { S: key }, v: { S: body } } }),
      );
      const got = await dynamodb.send(
        new GetItemCommand({ TableName: event.table, Key: { pk: { S: key } } }),
      );
      read.push(got.Item.v.S === body ? body.length : `wrong item for ${key}`);
    } else {
      throw new Error(`unknown service ${event.service}`);
    }
  }
  return { read, sent: [...sent] };
};
