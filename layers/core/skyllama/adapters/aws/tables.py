"""Create the bucket, table and queues with the schema ``template.yaml`` declares.

Used by the contract tests (against moto) and by a local bootstrap against any S3/DynamoDB/SQS
endpoint. ``tests/lambda/test_template.py`` checks that the template and these constants agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TABLE_KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
TABLE_ATTRIBUTES = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]
TTL_ATTRIBUTE = "expires_at"
BILLING_MODE = "PAY_PER_REQUEST"
ABORT_MULTIPART_DAYS = 1
TEMP_UPLOAD_DAYS = 2
WORKER_TIMEOUT = 900
QUEUE_VISIBILITY_TIMEOUT = 6 * WORKER_TIMEOUT  # Lambda's guidance for SQS event sources
QUEUE_MAX_RECEIVE_COUNT = 3
DLQ_RETENTION = 14 * 24 * 3600


def lifecycle_rules(prefix: str = "") -> list[dict[str, Any]]:
    """Abort unfinished multipart uploads; expire temporary upload objects left by a crash."""
    return [
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
        },
        {
            "ID": "expire-temporary-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": f"{prefix}uploads/"},
            "Expiration": {"Days": TEMP_UPLOAD_DAYS},
        },
    ]


def create_bucket(s3: Any, name: str, *, prefix: str = "", region: str | None = None) -> None:
    """A private, encrypted bucket with the lifecycle rules above."""
    region = region or s3.meta.region_name
    params: dict[str, Any] = {"Bucket": name}
    if region and region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**params)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
        },
    )
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": lifecycle_rules(prefix)})


def create_table(dynamodb: Any, name: str) -> None:
    """The single state table: ``pk``/``sk`` strings, on demand, TTL on ``expires_at``, PITR."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=TABLE_KEY_SCHEMA,
        AttributeDefinitions=TABLE_ATTRIBUTES,
        BillingMode=BILLING_MODE,
        SSESpecification={"Enabled": True},
    )
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
    dynamodb.update_continuous_backups(
        TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )


def create_queue(sqs: Any, name: str) -> tuple[str, str]:
    """The jobs queue and its dead-letter queue; returns ``(queue_url, dlq_url)``."""
    import json

    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq",
        Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION), "SqsManagedSseEnabled": "true"},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": QUEUE_MAX_RECEIVE_COUNT}
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT),
            "RedrivePolicy": json.dumps(redrive),
            "SqsManagedSseEnabled": "true",
        },
    )["QueueUrl"]
    return url, dlq_url


@dataclass(frozen=True)
class Resources:
    """What :func:`bootstrap` created."""

    bucket: str
    table: str
    queue_url: str
    dlq_url: str


def bootstrap(
    *,
    bucket: str,
    table: str,
    queue: str,
    prefix: str = "",
    session: Any | None = None,
    endpoint_url: str | None = None,
) -> Resources:
    """Create all three (e.g. against moto in server mode: ``endpoint_url="http://127.0.0.1:5000"``)."""
    import boto3

    session = session or boto3.session.Session()
    create_bucket(session.client("s3", endpoint_url=endpoint_url), bucket, prefix=prefix)
    create_table(session.client("dynamodb", endpoint_url=endpoint_url), table)
    url, dlq = create_queue(session.client("sqs", endpoint_url=endpoint_url), queue)
    return Resources(bucket=bucket, table=table, queue_url=url, dlq_url=dlq)
