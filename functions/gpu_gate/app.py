"""GPU gate (InferenceAccelerator gpu): the API's Lambda authorizer on the GPU routes.

A REQUEST authorizer, never cached (its answer changes when the service scales): the API key from
``Authorization: Bearer`` or ``x-api-key`` is checked against the state table; then
``skyllama.services.fleet.gpu_gate`` decides. Allow: the request goes through the VPC link to the
GPU service. Deny: no task is running yet (the demand is recorded and the service raised from
zero); the gateway's ACCESS_DENIED response turns it into 503 with Retry-After. No key: the
authorizer's ``Unauthorized`` error, the gateway's 401.
"""

from typing import Any

import boto3
from aws_lambda_powertools import Logger

from skyllama.adapters.aws.capacity import EcsDesiredCount
from skyllama.adapters.aws.factory import lambda_settings
from skyllama.composition import build_stores
from skyllama.http.auth import bearer_secret
from skyllama.ports import Clock
from skyllama.services.access.keys import ApiKeys
from skyllama.services.fleet.gpu_gate import GpuGate, Verdict

logger = Logger()
settings, clock = lambda_settings(), Clock()
state = build_stores(settings, clock).state  # keys and the demand record: the same table as the app's
keys = ApiKeys(state, clock=clock, cache_seconds=settings.auth_cache_seconds) if settings.auth_enabled else None
tasks = EcsDesiredCount(boto3.client("ecs", endpoint_url=settings.aws_endpoint_url or None),
                        settings.gpu_cluster, settings.gpu_service)
gate = GpuGate(keys, tasks, state, clock)


def policy(effect: str, event: dict[str, Any], principal: str, reason: str) -> dict[str, Any]:
    return {"principalId": principal,
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}]},
            "context": {"reason": reason}}


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An API Gateway REQUEST authorizer event in, an IAM policy out (or ``Unauthorized``)."""
    headers = event.get("headers") or {}
    scope = {"headers": [(str(k).lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]}
    answer = gate.check(bearer_secret(scope))
    logger.info(answer.reason, extra={"verdict": answer.verdict.value})
    if answer.verdict is Verdict.UNAUTHORIZED:
        raise Exception("Unauthorized")  # noqa: TRY002 - the exact error API Gateway maps to 401
    principal = answer.principal.key_id if answer.principal is not None else "anonymous"
    return policy("Allow" if answer.verdict is Verdict.ALLOW else "Deny", event, principal, answer.reason)
