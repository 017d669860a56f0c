"""Issue 19 item 5: behind the gateway the GPU service keeps the same API keys, metering and quotas
as every other route. The app runs with the environment the GPU stack's task definition gives the
container (infra/gpu/template.yaml, its Refs resolved to moto's bucket and table, as the nested
stack receives the main stack's), on a real server, with the fake engine: a request without a key
is the same 401 the gateway's GPU gate answers; a key made in the table the gate reads works, is
metered, and its per-minute quota answers 429.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lambda_support import FakeAws
from test_template import CfnLoader

from serving import run_server
from skyllama.composition import build_stores
from skyllama.engine.fake import FakeEngine
from skyllama.ports import Clock
from skyllama.services.access.keys import ApiKeys
from skyllama.settings import Settings

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2:135m"


def load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # type: ignore[no-any-return]  # noqa: S506


def container_env(fake_aws: FakeAws) -> dict[str, str]:
    """The GPU container's environment, with the values the main stack passes the nested stack."""
    main, gpu = load(ROOT / "template.yaml"), load(ROOT / "infra" / "gpu" / "template.yaml")
    passed = main["Resources"]["GpuService"]["Properties"]["Parameters"]
    assert passed["StateTable"] == {"Ref": "StateTable"} and passed["ModelBucket"] == {"Ref": "ModelBucket"}
    assert main["Globals"]["Function"]["Environment"]["Variables"]["SKYLLAMA_TABLE"] == {"Ref": "StateTable"}
    refs = {"StateTable": fake_aws.table, "ModelBucket": fake_aws.bucket, "ModelPrefix": ""}
    [task] = [r["Properties"] for r in gpu["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    [container] = task["ContainerDefinitions"]
    return {e["Name"]: refs[e["Value"]["Ref"]] if isinstance(e["Value"], dict) else str(e["Value"])
            for e in container["Environment"]}


def test_the_gpu_service_checks_meters_and_limits_keys_from_the_same_table(
        seeded_aws: FakeAws, tmp_path: Path) -> None:
    env = container_env(seeded_aws)
    settings = Settings.from_env({**env, "AWS_ENDPOINT_URL": seeded_aws.endpoint})
    assert settings.backend == "aws" and settings.auth_enabled  # no SKYLLAMA_AUTH: on, as with every aws function
    assert settings.table == seeded_aws.table
    # the key is made where the API function's key routes and the GPU gate keep and read keys
    state = build_stores(settings, Clock()).state
    secret, record = ApiKeys(state).create_key(name="gpu", owner="alice", scopes=["inference"], rpm=2)
    engine = FakeEngine()
    gateway_401 = load(ROOT / "template.yaml")["Resources"]["SkyllamaApi"]["Properties"]["DefinitionBody"][
        "x-amazon-apigateway-gateway-responses"]["Fn::If"][1]["UNAUTHORIZED"]["responseTemplates"]["application/json"]
    with run_server(tmp_path / "models", engine=engine, backend=settings.backend, bucket=settings.bucket,
                    table=settings.table, prefix=settings.prefix, aws_endpoint_url=seeded_aws.endpoint,
                    cache_dir=tmp_path / "cache") as server:
        body = {"model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
        anonymous = httpx.post(f"{server.url}/api/generate", json=body, timeout=60)
        assert anonymous.status_code == 401 and anonymous.json() == json.loads(gateway_401)
        headers = {"Authorization": f"Bearer {secret}"}
        for _attempt in range(3):  # the quota is per clock minute: all three inside one
            minute = time.time() // 60
            engine.enqueue(["Hello", "!"])
            engine.enqueue(["Hi", "."])
            codes = [httpx.post(f"{server.url}/api/generate", json=body, headers=headers, timeout=120)
                     for _ in range(3)]
            if time.time() // 60 == minute:
                break
            secret, record = ApiKeys(state).create_key(name="gpu", owner="alice", scopes=["inference"], rpm=2)
            headers = {"Authorization": f"Bearer {secret}"}
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert "quota exceeded" in codes[2].json()["error"] and int(codes[2].headers["retry-after"]) >= 1
        deadline = time.time() + 10
        while len(records := server.runtime.meter.records(record["id"])) < 2 and time.time() < deadline:
            time.sleep(0.05)  # written after the last byte
    assert [r["route"] for r in records] == ["/api/generate", "/api/generate"]
    assert sum(r["completion_tokens"] for r in records) == sum(c.json()["eval_count"] for c in codes[:2])
