"""A handler that calls AWS through the AWS SDK for Python (boto3): S3 or DynamoDB at the
endpoint DS_ENDPOINT names (the test's stand-in, moto behind a proxy that delays each answer),
for lambda-meter's downstream figures.

Each invoke returns what it read back and every HTTP request the SDK sent, as the SDK saw it
(botocore's `before-send` event, once per attempt, retries included), so that the test can set
them against the requests the stand-in received and the calls the record counts."""

import os

import boto3
from botocore.config import Config

# The clients are made at init, outside the handler, as functions usually make them; their
# connections are opened by the first call and kept.
ENDPOINT = os.environ["DS_ENDPOINT"]
S3 = boto3.client(
    "s3", endpoint_url=ENDPOINT, config=Config(s3={"addressing_style": "path"})
)
DYNAMODB = boto3.client("dynamodb", endpoint_url=ENDPOINT)

SENT = []


def _sent(request, **_):
    SENT.append(f"{request.method} {request.url[len(ENDPOINT):] or '/'}")


for _client in (S3, DYNAMODB):
    _client.meta.events.register("before-send", _sent)


def handler(event, context):
    SENT.clear()
    prefix, n, size = event["prefix"], event["items"], event["size"]
    read = []
    if event["service"] == "s3":
        bucket = event["bucket"]
        for i in range(n):
            key = f"{prefix}-{i}"
            body = (f"{key}:" * size)[:size].encode()
            S3.put_object(Bucket=bucket, Key=key, Body=body)
            got = S3.get_object(Bucket=bucket, Key=key)["Body"].read()
            read.append(len(got) if got == body else f"wrong body for {key}")
    elif event["service"] == "dynamodb":
        table = event["table"]
        for i in range(n):
            key = f"{prefix}-{i}"
            value = (f"{key}:" * size)[:size]
            DYNAMODB.put_item(TableName=table, Item={"pk": {"S": key}, "v": {"S": value}})
            got = DYNAMODB.get_item(TableName=table, Key={"pk": {"S": key}})["Item"]
            read.append(len(value) if got["v"]["S"] == value else f"wrong item for {key}")
    else:
        raise ValueError(event["service"])
    return {"read": read, "sent": list(SENT)}
