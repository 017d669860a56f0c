"""The warmer function (EventBridge schedule): lists live instance records and invokes the
inference function with a warm-up event naming their models."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from lambda_support import FakeAws, LambdaContext, load_event, load_function


class FakeLambda:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"StatusCode": 202}


@pytest.fixture
def warmer(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in fake_aws.env.items():
        monkeypatch.setenv(key, value)
    return load_function("warmer", {**fake_aws.env, "SKYLLAMA_INFERENCE_FUNCTION": "skyllama-inference"})


def test_scheduled_event_warms_the_live_models(warmer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    state = warmer.services.state
    state.put("instance", "i-live", {"model": "smollm2:135m"}, expires_at=time.time() + 300)
    state.put("instance", "i-gone", {"model": "old:1b"}, expires_at=time.time() - 1)
    fake = FakeLambda()
    monkeypatch.setattr(warmer.boto3, "client", lambda *_a, **_k: fake)
    result = warmer.handler(load_event("eventbridge-schedule"), LambdaContext("skyllama-warmer"))
    assert result == {"models": ["smollm2:135m"], "invoked": True}
    assert fake.calls[0]["FunctionName"] == "skyllama-inference" and fake.calls[0]["InvocationType"] == "Event"
    assert json.loads(fake.calls[0]["Payload"]) == {"source": "skyllama.warmer", "models": ["smollm2:135m"]}
    state.delete("instance", "i-live")
    state.delete("instance", "i-gone")


def test_nothing_live_invokes_nothing(warmer: Any) -> None:
    result = warmer.handler(load_event("eventbridge-schedule"), LambdaContext("skyllama-warmer"))
    assert result == {"models": [], "invoked": False}


def test_preloaded_models_are_kept_warm(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """SKYLLAMA_PRELOAD feeds the warmer: pinned models are warmed with no instance record; an
    entry with keep_alive 0 is not pinned."""
    env = {**fake_aws.env, "SKYLLAMA_INFERENCE_FUNCTION": "skyllama-inference",
           "SKYLLAMA_PRELOAD": "pinned:1b=-1,plain:1b,off:1b=0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    warmer = load_function("warmer", env)
    fake = FakeLambda()
    monkeypatch.setattr(warmer.boto3, "client", lambda *_a, **_k: fake)
    result = warmer.handler(load_event("eventbridge-schedule"), LambdaContext("skyllama-warmer"))
    assert result == {"models": ["pinned:1b", "plain:1b"], "invoked": True}
    assert json.loads(fake.calls[0]["Payload"])["models"] == ["pinned:1b", "plain:1b"]
