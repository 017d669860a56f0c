"""Build the AWS stores from settings: S3 blobs and manifests, DynamoDB state, SQS jobs.

One boto3 session per process, one client per service (clients are thread-safe), pointed at
``settings.aws_endpoint_url`` when set (moto's server mode in tests, any S3/DynamoDB/SQS-
compatible endpoint elsewhere). Nothing is contacted here: the first request does that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.config import Config

from ...ports import Clock
from ...settings import Settings, SettingsError
from .dynamodb_state import DynamoDBStateStore
from .s3_blobs import S3BlobStore
from .s3_manifests import S3ManifestStore
from .sqs_jobs import SqsJobQueue

LAMBDA_CACHE_DIR = Path("/tmp/skyllama/blobs")  # noqa: S108 - Lambda's only writable folder

# Presigned URLs must be SigV4 on the bucket's regional endpoint: botocore's defaults for S3 can
# still hand out SigV2 query strings (AWSAccessKeyId/Signature/Expires) on the global endpoint,
# which every bucket made since June 2020 refuses (moto and LocalStack accept them, so no local
# engine can show it). Virtual-hosted addressing on the regional host is what AWS documents
# for presigned URLs; us-east-1 is made regional too (its default is the global endpoint). A
# custom endpoint (moto, LocalStack, MinIO on an IP address) takes path-style addressing.
S3_CONFIG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
)
S3_ENDPOINT_CONFIG = Config(signature_version="s3v4", s3={"addressing_style": "path"})


@dataclass(frozen=True)
class AwsStores:
    """The stores of ``backend == "aws"``; ``jobs`` is ``None`` when no queue is configured."""

    blobs: S3BlobStore
    manifests: S3ManifestStore
    state: DynamoDBStateStore
    jobs: SqsJobQueue | None
    clients: dict[str, Any]


def aws_clients(settings: Settings, session: Any | None = None) -> dict[str, Any]:
    """``s3``, ``dynamodb`` and ``sqs`` clients, at ``aws_endpoint_url`` when it is set."""
    import boto3

    session = session or boto3.session.Session()
    endpoint = settings.aws_endpoint_url or None
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
    clients = {name: session.client(name, endpoint_url=endpoint, config=config) for name in ("dynamodb", "sqs")}
    clients["s3"] = session.client("s3", endpoint_url=endpoint, config=config.merge(S3_ENDPOINT_CONFIG if endpoint else S3_CONFIG))
    return clients


def cache_dir(settings: Settings) -> Path | None:
    """Where verified blobs are cached: the setting, ``/tmp/skyllama/blobs`` in Lambda, else the default."""
    import os

    if settings.cache_dir is not None:
        return settings.cache_dir
    return LAMBDA_CACHE_DIR if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else None


def build_aws_stores(settings: Settings, *, clock: Clock | None = None, session: Any | None = None) -> AwsStores:
    """The AWS adapters named by ``settings`` (bucket and table are required)."""
    missing = [var for var, value in (("SKYLLAMA_BUCKET", settings.bucket), ("SKYLLAMA_TABLE", settings.table))
               if not value]
    if missing:
        raise SettingsError(f"backend=aws needs {' and '.join(missing)}")
    clients = aws_clients(settings, session)
    try:
        blobs = S3BlobStore(settings.bucket, prefix=settings.prefix, client=clients["s3"],
                            cache_dir=cache_dir(settings))
        manifests = S3ManifestStore(settings.bucket, prefix=settings.prefix, client=clients["s3"])
    except ValueError as e:
        raise SettingsError(f"SKYLLAMA_PREFIX: {e}") from None
    state = DynamoDBStateStore(settings.table, client=clients["dynamodb"], clock=clock)
    jobs = SqsJobQueue(settings.queue_url, client=clients["sqs"]) if settings.queue_url else None
    return AwsStores(blobs=blobs, manifests=manifests, state=state, jobs=jobs, clients=clients)


def lambda_settings(environ: dict[str, str] | None = None) -> Settings:
    """A function's settings: the environment, with ``OLLAMA_HOST`` defaulting to ``0.0.0.0``.

    The API Gateway, Function URL or ALB in front is the listener; the loopback default would
    turn on the browser DNS-rebinding host check, which refuses their host names.
    """
    import os

    env = dict(os.environ if environ is None else environ)
    env.setdefault("OLLAMA_HOST", "0.0.0.0")  # noqa: S104 - not a socket: the Lambda's front door
    return Settings.from_env(env)
