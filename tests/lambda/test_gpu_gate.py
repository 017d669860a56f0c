"""The GPU gate (functions/gpu_gate, the API's authorizer on the GPU routes) in-process against
moto's DynamoDB (the same keys as the app's) and ECS (the GPU service), and what the warmer does
with the demand it records. The gateway side (its Deny is ACCESS_DENIED: 503 with Retry-After,
``Unauthorized`` is 401) is the template's, checked in test_gpu_routes.py: moto's API Gateway runs
no authorizers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from lambda_support import FakeAws, LambdaContext, load_function

from skyllama.composition import build_stores
from skyllama.ports import Clock
from skyllama.services.access.keys import ApiKeys
from skyllama.services.fleet.gpu_gate import DEMAND_KEY, DEMAND_KIND, DEMAND_SECONDS, demand_until
from skyllama.services.fleet.warm_policy import warm_round
from skyllama.settings import Settings

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/api/generate"


@pytest.fixture
def gpu_service(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A GPU service at zero in a cluster of its own; ``running`` makes one that has a task up."""
    ecs = fake_aws.client("ecs")
    cluster = f"gpu-{uuid.uuid4().hex[:8]}"
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(family=cluster, containerDefinitions=[{"name": "app", "image": "x", "memory": 512}])

    def service(running: int = 0, desired: int = 0) -> str:
        name = f"svc-{uuid.uuid4().hex[:8]}"
        with monkeypatch.context() as mp:  # moto's way to have tasks RUNNING (the server is in-process)
            mp.setenv("MOTO_ECS_SERVICE_RUNNING", str(running))
            ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=cluster, desiredCount=desired)
        return name

    yield {"ecs": ecs, "cluster": cluster, "service": service}


def gate_env(fake_aws: FakeAws, cluster: str, service: str) -> dict[str, str]:
    return {**fake_aws.env, "SKYLLAMA_AUTH": "on", "SKYLLAMA_GPU_CLUSTER": cluster, "SKYLLAMA_GPU_SERVICE": service}


def new_key(env: dict[str, str]) -> str:
    state = build_stores(Settings.from_env(env), Clock()).state
    secret, _ = ApiKeys(state).create_key(name="gate test", owner="alice", scopes=["inference"])
    return secret


def authorize(module: Any, **headers: str) -> dict[str, Any]:
    event = {"type": "REQUEST", "methodArn": METHOD_ARN, "headers": headers}
    result: dict[str, Any] = module.handler(event, LambdaContext("skyllama-gpu-gate"))
    return result


def desired(gpu_service: dict[str, Any], name: str) -> int:
    found = gpu_service["ecs"].describe_services(cluster=gpu_service["cluster"], services=[name])
    return int(found["services"][0]["desiredCount"])


def demand(env: dict[str, str]) -> dict[str, Any] | None:
    return build_stores(Settings.from_env(env), Clock()).state.get(DEMAND_KIND, DEMAND_KEY)


def test_no_key_is_401_and_starts_nothing(fake_aws: FakeAws, gpu_service: dict[str, Any]) -> None:
    name = gpu_service["service"]()
    env = gate_env(fake_aws, gpu_service["cluster"], name)
    state = build_stores(Settings.from_env(env), Clock()).state
    state.delete(DEMAND_KIND, DEMAND_KEY)
    gate = load_function("gpu_gate", env)
    for headers in ({}, {"Authorization": "Bearer sk-not-a-key"}, {"x-api-key": "nope"}):
        with pytest.raises(Exception, match="^Unauthorized$"):
            authorize(gate, **headers)
    assert desired(gpu_service, name) == 0 and demand(env) is None


def test_at_zero_a_valid_key_is_denied_the_service_raised_and_the_warmer_keeps_it(
        fake_aws: FakeAws, gpu_service: dict[str, Any]) -> None:
    name = gpu_service["service"]()
    env = gate_env(fake_aws, gpu_service["cluster"], name)
    gate = load_function("gpu_gate", env)
    answer = authorize(gate, Authorization=f"Bearer {new_key(env)}")
    [statement] = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Resource"] == METHOD_ARN
    assert "0 -> 1" in answer["context"]["reason"]
    assert desired(gpu_service, name) == 1  # the request itself starts the GPU service
    recorded = demand(env)
    assert recorded is not None and recorded["until"] - recorded["since"] == DEMAND_SECONDS
    # the warmer: no model is live anywhere, yet the demand keeps one task until it runs out
    settings = Settings.from_env(env)
    now = float(recorded["since"]) + 60
    kept = warm_round([], settings, now, gpu_demand=demand_until(gate.state, now)).plan
    assert kept.desired_count == 1 and any("GPU demand" in r for r in kept.reasons)
    later = float(recorded["until"]) + 1
    assert warm_round([], settings, later, gpu_demand=demand_until(gate.state, later)).plan.desired_count == 0


def test_while_a_task_starts_a_request_is_denied_and_the_desired_count_left_alone(
        fake_aws: FakeAws, gpu_service: dict[str, Any]) -> None:
    name = gpu_service["service"](running=0, desired=2)  # asked for (the warmer, an operator), none up yet
    env = gate_env(fake_aws, gpu_service["cluster"], name)
    gate = load_function("gpu_gate", env)
    answer = authorize(gate, **{"x-api-key": new_key(env)})
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "starting" in answer["context"]["reason"] and desired(gpu_service, name) == 2
    assert demand(env) is not None


def test_a_running_service_lets_a_valid_key_through(fake_aws: FakeAws, gpu_service: dict[str, Any]) -> None:
    name = gpu_service["service"](running=1, desired=1)
    env = gate_env(fake_aws, gpu_service["cluster"], name)
    gate = load_function("gpu_gate", env)
    state = build_stores(Settings.from_env(env), Clock()).state
    state.delete(DEMAND_KIND, DEMAND_KEY)
    answer = authorize(gate, Authorization=f"Bearer {new_key(env)}")
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert answer["principalId"] != "anonymous" and demand(env) is None
    assert desired(gpu_service, name) == 1
