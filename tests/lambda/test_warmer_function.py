"""keep_alive across a fleet, with the functions in-process: inference instances (the real demo model
from moto's S3) write instance records, the warmer (a fake clock) applies the warm policy, its
warm-ups reach the inference handler, provisioned concurrency is set through a Lambda fake (moto has
no such API) and the GPU service's desired count through moto's ECS; the api function answers the
fleet /api/ps."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lambda_support import FakeAws, LambdaContext, invoke_http, load_event, load_function

from skyllama.adapters.aws.capacity import LambdaWarmUps, WarmerControls
from skyllama.services.fleet.records import INSTANCE_KIND
from skyllama.timefmt import rfc3339

pytestmark = pytest.mark.model
MODEL = "smollm2:135m"
INFERENCE = "skyllama-inference"


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


class LambdaApi:
    """The Lambda API the warmer uses: invoke forwards to an in-process handler; provisioned
    concurrency is kept per (function, qualifier)."""

    def __init__(self, functions: dict[str, Any]) -> None:
        self.functions = functions
        self.invokes: list[dict[str, Any]] = []
        self.results: list[Any] = []
        self.provisioned: dict[tuple[str, str], int] = {}

    def invoke(self, FunctionName: str, Payload: bytes, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self.invokes.append({"FunctionName": FunctionName, "event": json.loads(Payload), **kwargs})
        result = self.functions[FunctionName].handler(json.loads(Payload), LambdaContext(FunctionName))
        self.results.append(result)
        return {"StatusCode": 200, "Payload": json.dumps(result).encode()}

    def get_provisioned_concurrency_config(self, FunctionName: str, Qualifier: str) -> dict[str, Any]:  # noqa: N803
        from botocore.exceptions import ClientError

        if (FunctionName, Qualifier) not in self.provisioned:
            raise ClientError({"Error": {"Code": "ProvisionedConcurrencyConfigNotFoundException"}},
                              "GetProvisionedConcurrencyConfig")
        return {"RequestedProvisionedConcurrentExecutions": self.provisioned[(FunctionName, Qualifier)]}

    def put_provisioned_concurrency_config(self, FunctionName: str, Qualifier: str,  # noqa: N803
                                           ProvisionedConcurrentExecutions: int) -> None:  # noqa: N803
        self.provisioned[(FunctionName, Qualifier)] = ProvisionedConcurrentExecutions

    def delete_provisioned_concurrency_config(self, FunctionName: str, Qualifier: str) -> None:  # noqa: N803
        del self.provisioned[(FunctionName, Qualifier)]


@pytest.fixture(scope="module")
def fleet_env(seeded_aws: FakeAws, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ecs = seeded_aws.client("ecs")
    ecs.create_cluster(clusterName="skyllama-gpu")
    ecs.register_task_definition(family="skyllama-gpu", containerDefinitions=[{"name": "app", "image": "x", "memory": 512}])
    ecs.create_service(cluster="skyllama-gpu", serviceName="skyllama-gpu", taskDefinition="skyllama-gpu",
                       desiredCount=0)
    return {**seeded_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path_factory.mktemp("fleet") / "blobs"),
            "SKYLLAMA_INFERENCE_FUNCTION": INFERENCE, "SKYLLAMA_INFERENCE_ALIAS": "live",
            "SKYLLAMA_GPU_CLUSTER": "skyllama-gpu", "SKYLLAMA_GPU_SERVICE": "skyllama-gpu"}


@pytest.fixture(scope="module")
def fleet(fleet_env: dict[str, str]) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in fleet_env.items():
            mp.setenv(key, value)
        yield {name: load_function(kind, fleet_env, function_name=fn) for name, kind, fn in (
            ("inference", "inference", INFERENCE), ("second", "inference", INFERENCE),
            ("warmer", "warmer", "skyllama-warmer"), ("api", "api", "skyllama-api"))}


@pytest.fixture
def lambda_api(fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch, seeded_aws: FakeAws) -> LambdaApi:
    """No instance records from other tests; boto3 in the warmer talks to the fakes."""
    state = fleet["warmer"].state
    for key, _item in state.query(INSTANCE_KIND):
        state.delete(INSTANCE_KIND, key)
    fake, ecs = LambdaApi({INFERENCE: fleet["inference"]}), seeded_aws.client("ecs")
    controls = WarmerControls.from_settings(fleet["warmer"].settings,
                                            client=lambda service, **_kw: fake if service == "lambda" else ecs)
    monkeypatch.setattr(fleet["warmer"], "controls", controls)
    return fake


def warm_ups_only(lambda_api: LambdaApi) -> WarmerControls:
    """The warm-up invocations through the fake, no capacity to set."""
    return WarmerControls(LambdaWarmUps(lambda_api, INFERENCE, "live"), None, None)


def generate(function: Any, keep_alive: Any) -> None:
    result = invoke_http(function, "rest-api-v1", "POST", "/api/generate", body={
        "model": MODEL, "prompt": "Hi", "stream": False, "keep_alive": keep_alive,
        "options": {"temperature": 0, "num_predict": 2}})
    assert result.status == 200, result.body


def run_warmer(fleet: dict[str, Any], at: float, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(fleet["warmer"], "clock", FakeClock(at))
    result: dict[str, Any] = fleet["warmer"].handler(load_event("eventbridge-schedule"), LambdaContext("warmer"))
    return result


def desired_count(seeded_aws: FakeAws) -> int:
    import boto3

    found = boto3.Session().client("ecs", endpoint_url=seeded_aws.endpoint, region_name="us-east-1").describe_services(cluster="skyllama-gpu", services=["skyllama-gpu"])
    return int(found["services"][0]["desiredCount"])


def test_ten_minutes_of_keep_alive_keep_one_instance_warm_for_ten_minutes(
        fleet: dict[str, Any], lambda_api: LambdaApi, monkeypatch: pytest.MonkeyPatch, seeded_aws: FakeAws) -> None:
    start = time.time()
    generate(fleet["inference"], "10m")
    [record] = [item for _key, item in fleet["warmer"].state.query(INSTANCE_KIND)]
    assert record["model"] == MODEL and record["function"] == INFERENCE and record["keep_alive"] == 600
    assert start + 600 <= record["model_expires_at"] <= time.time() + 600

    for minute in (1, 5, 9):
        warm = run_warmer(fleet, start + minute * 60, monkeypatch)
        assert warm["models"] == [MODEL] and warm["warm_ups"] == warm["answered"] == 1
        assert warm["provisioned"] == 0 and warm["desired_count"] == 1
    sent = lambda_api.invokes[-1]
    assert sent["FunctionName"] == INFERENCE and sent["Qualifier"] == "live"
    assert sent["InvocationType"] == "RequestResponse"  # concurrent warm-ups reach distinct instances
    assert sent["event"] == {"source": "skyllama.warmer",
                             "models": [{"name": MODEL, "expires_at": record["model_expires_at"], "keep_alive": 600}]}
    # the warm-up held the model until the same expiry and kept the keep_alive asked for
    [refreshed] = [item for _key, item in fleet["warmer"].state.query(INSTANCE_KIND)]
    assert (refreshed["model_expires_at"], refreshed["keep_alive"]) == (record["model_expires_at"], 600)
    assert lambda_api.results[-1] == {"warm": True, "models": {MODEL: "warm"}}
    assert desired_count(seeded_aws) == 1  # the GPU service keeps one task while a model is live
    assert lambda_api.provisioned == {}  # 10 minutes is below SKYLLAMA_WARM_PROVISION_AFTER

    calls = len(lambda_api.invokes)
    done = run_warmer(fleet, start + 11 * 60, monkeypatch)
    assert done["models"] == [] and done["warm_ups"] == 0 and len(lambda_api.invokes) == calls
    assert done["desired_count"] == 0 and desired_count(seeded_aws) == 0  # scaled to zero
    assert "no live model" in " ".join(done["reasons"])


def test_forever_raises_provisioned_concurrency_and_keep_alive_zero_lowers_it(
        fleet: dict[str, Any], lambda_api: LambdaApi, monkeypatch: pytest.MonkeyPatch, seeded_aws: FakeAws) -> None:
    generate(fleet["inference"], -1)
    warm = run_warmer(fleet, time.time() + 86_400, monkeypatch)  # a day later: still kept
    assert warm["models"] == [MODEL] and warm["provisioned"] == 1 and warm["desired_count"] == 1
    assert lambda_api.provisioned == {(INFERENCE, "live"): 1} and desired_count(seeded_aws) == 1
    assert "provisioned concurrency 0 -> 1" in warm["actions"]
    assert any("needs provisioned capacity" in reason for reason in warm["reasons"])
    again = run_warmer(fleet, time.time() + 86_460, monkeypatch)
    assert "provisioned concurrency stays 1" in again["actions"]  # nothing written when nothing changes

    generate(fleet["inference"], 0)  # keep_alive 0: unloaded, and the fleet's keep_alive of it ends
    assert fleet["warmer"].state.query(INSTANCE_KIND) == []
    lowered = run_warmer(fleet, time.time(), monkeypatch)
    assert lowered["models"] == [] and lowered["provisioned"] == 0 and lowered["desired_count"] == 0
    assert lambda_api.provisioned == {} and desired_count(seeded_aws) == 0
    assert "provisioned concurrency 1 -> 0" in lowered["actions"]


def test_two_instances_merge_in_fleet_ps_and_expired_records_never_show(
        fleet: dict[str, Any], lambda_api: LambdaApi) -> None:
    generate(fleet["inference"], "5m")
    generate(fleet["second"], "20m")  # another execution environment of the same function
    state = fleet["warmer"].state
    keys = [key for key, _item in state.query(INSTANCE_KIND)]
    assert len(keys) == 2 and len({key.split("#")[0] for key in keys}) == 2
    [[_key, later]] = [(k, v) for k, v in state.query(INSTANCE_KIND) if v["keep_alive"] == 1200]
    state.put(INSTANCE_KIND, "i-gone#" + later["digest"], {**later, "model": "gone:1b",
                                                           "model_expires_at": time.time() - 1})
    ps = invoke_http(fleet["api"], "rest-api-v1", "GET", "/api/ps")  # the api function loads no model
    assert ps.status == 200
    rows = ps.json()["models"]
    assert [row["name"] for row in rows] == [MODEL]  # one row; the expired record is not shown
    assert rows[0]["expires_at"] == rfc3339(datetime.fromtimestamp(later["model_expires_at"], tz=UTC))
    assert rows[0]["size"] > 0 and rows[0]["details"]["format"] == "gguf"


def test_preloaded_models_are_kept_warm(fleet_env: dict[str, str], fleet: dict[str, Any],
                                        lambda_api: LambdaApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """SKYLLAMA_PRELOAD feeds the warmer: pinned models are warmed with no instance record; an
    entry with keep_alive 0 is not pinned; one pinned forever gets provisioned concurrency."""
    env = {**fleet_env, "SKYLLAMA_PRELOAD": f"{MODEL}=-1,plain:1b,off:1b=0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    warmer = load_function("warmer", env)
    monkeypatch.setattr(warmer, "controls", warm_ups_only(lambda_api))
    result = warmer.handler(load_event("eventbridge-schedule"), LambdaContext("skyllama-warmer"))
    assert result["models"] == ["plain:1b", MODEL] and result["provisioned"] == 1
    [slot] = [call["event"]["models"] for call in lambda_api.invokes]
    assert [(entry["name"], entry["keep_alive"]) for entry in slot] == [("plain:1b", 300), (MODEL, -1)]
    assert lambda_api.results[-1]["models"][MODEL] == "warm"
    assert lambda_api.results[-1]["models"]["plain:1b"].startswith("failed")  # no such model: logged, not fatal


def test_nothing_live_invokes_nothing(fleet: dict[str, Any], lambda_api: LambdaApi,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_warmer(fleet, time.time(), monkeypatch)
    assert result["models"] == [] and result["warm_ups"] == 0 and lambda_api.invokes == []


def test_warm_up_event_validation(fleet: dict[str, Any], lambda_api: LambdaApi, tmp_path: Path) -> None:
    """What the inference function does with a warm-up: loads what is live, skips the rest."""
    handler = fleet["second"].handler
    result = handler({"source": "skyllama.warmer", "models": [
        {"name": MODEL, "expires_at": time.time() + 60}, {"name": "x:1b", "expires_at": time.time() - 1},
        {"name": "y:1b", "expires_at": "soon"}, {"name": 3}, ""]}, LambdaContext())
    assert result == {"warm": True, "models": {MODEL: "warm", "x:1b": "expired", "y:1b": "bad expires_at or keep_alive"}}
    assert handler({"source": "skyllama.warmer", "models": "nope"}, LambdaContext()) == {"warm": True, "models": {}}


def test_a_bad_keep_alive_in_preload_is_skipped_and_the_rest_kept_warm(
        fleet_env: dict[str, str], fleet: dict[str, Any], lambda_api: LambdaApi,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """One entry of SKYLLAMA_PRELOAD with a keep_alive that is no duration is skipped, with its
    reason logged as a warning; the round goes on and keeps the other entries warm (it used to
    raise InvalidDuration and stop every round)."""
    env = {**fleet_env, "SKYLLAMA_PRELOAD": f"{MODEL}=bogus,all-minilm=10m"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    warmer = load_function("warmer", env)
    monkeypatch.setattr(warmer, "controls", warm_ups_only(lambda_api))
    result = warmer.handler(load_event("eventbridge-schedule"), LambdaContext("skyllama-warmer"))
    assert result["models"] == ["all-minilm"] and result["provisioned"] == 0
    [slot] = [call["event"]["models"] for call in lambda_api.invokes]
    assert [(entry["name"], entry["keep_alive"]) for entry in slot] == [("all-minilm", 600)]
    skipped = f"{MODEL}: SKYLLAMA_PRELOAD entry skipped: invalid duration 'bogus'"
    assert skipped in result["reasons"]
    assert skipped in [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
