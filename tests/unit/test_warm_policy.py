"""The warm policy (pure): live records, pinned models, limits and a fake 'now' in, the plan out."""

from __future__ import annotations

from typing import Any

from skyllama.keep_alive import KeepAlive
from skyllama.services.fleet.records import InstanceRecord
from skyllama.services.fleet.warm_policy import (
    WarmLimits,
    live_models,
    pinned_models,
    plan,
    warm_round,
    warm_up_events,
)
from skyllama.settings import Settings

T0 = 1_800_000_000.0
LIMITS = WarmLimits(provision_after=3600.0, max_per_model=2, max_total=4)


def record(model: str, keep_alive: float, at: float = T0, instance: str = "i-1", function: str = "fn") -> InstanceRecord:
    """What an instance writes when a request with ``keep_alive`` ends at ``at`` (-1: forever)."""
    asked = KeepAlive.of_seconds(keep_alive)
    return InstanceRecord(model=model, digest="ab" * 32, expires_at=asked.expires_at(at), keep_alive=asked,
                          size=1, size_vram=0, context_length=2048, instance=instance, function=function)


def plan_at(now: float, records: list[InstanceRecord], pinned: dict[str, KeepAlive] | None = None,
            limits: WarmLimits = LIMITS) -> Any:
    return plan(live_models(records, now), pinned or {}, limits, now)


def test_ten_minutes_of_keep_alive_are_kept_warm_for_ten_minutes_then_not() -> None:
    records = [record("smollm2:135m", 600)]
    for minute in range(0, 10):
        warm = plan_at(T0 + minute * 60 + 30, records)
        assert warm.warm == {"smollm2:135m": 1} and warm.provisioned == 0
        assert warm.desired_count == 1  # GPU service: one task while a model is live
        assert any("keep_alive not expired" in r for r in warm.reasons)
    done = plan_at(T0 + 601, records)
    assert done.warm == {} and done.provisioned == 0 and done.desired_count == 0
    assert done.reasons == ["no live model: nothing warmed, provisioned capacity and GPU tasks 0"]


def test_forever_and_long_keep_alive_get_provisioned_capacity() -> None:
    forever = plan_at(T0 + 86_400 * 30, [record("smollm2:135m", -1)])
    assert forever.warm == {"smollm2:135m": 1} and forever.provisioned == 1 and forever.desired_count == 1
    assert any("keep_alive forever > 3600s: needs provisioned capacity" in r for r in forever.reasons)
    two_hours = plan_at(T0, [record("a", 7200), record("b", 1800)])
    assert two_hours.provisioned == 1 and set(two_hours.warm) == {"a", "b"}
    assert plan_at(T0, [record("a", 3600)]).provisioned == 0  # the threshold itself is not "longer"


def test_instances_holding_a_model_are_each_kept_warm_up_to_the_per_model_limit() -> None:
    records = [record("a", 600, instance=f"i-{n}") for n in range(3)]
    warm = plan_at(T0, records)
    assert warm.warm == {"a": 2}  # three instances hold it; the guard allows two
    assert plan_at(T0, records, limits=WarmLimits(3600.0, 0, 4)).warm == {}
    assert "a: warm-ups off (max 0 per model)" in plan_at(T0, records, limits=WarmLimits(3600.0, 0, 4)).reasons


def test_the_total_cost_guard_serves_the_longest_lived_models_first() -> None:
    records = [record(m, ka, instance=f"i-{n}") for m, ka in (("a", 600), ("b", -1), ("c", 7200)) for n in range(2)]
    warm = plan_at(T0, records, limits=WarmLimits(3600.0, 2, 3))
    assert warm.warm == {"b": 2, "c": 1}  # forever first, then the later expiry; a is left out
    assert sum(warm.warm.values()) == 3 and warm.provisioned == 2
    assert any("cost guard (3 in total): 1 warm-up(s) not sent" in r for r in warm.reasons)
    capped = plan_at(T0, [record(m, -1) for m in "abcde"], limits=WarmLimits(3600.0, 1, 2))
    assert capped.provisioned == 2 and capped.desired_count == 2
    assert "cost guard: provisioned capacity 5 capped at 2" in capped.reasons


def test_pinned_models_are_warmed_without_records() -> None:
    warm = plan_at(T0, [], pinned={"smollm2:135m": KeepAlive.FOREVER,
                                          "all-minilm:latest": KeepAlive.of_seconds(300)})
    assert warm.warm == {"all-minilm:latest": 1, "smollm2:135m": 1}
    assert warm.provisioned == 1  # only the one pinned forever
    assert any("pinned by SKYLLAMA_PRELOAD" in r for r in warm.reasons)


def test_records_merge_per_model_with_the_latest_expiry_and_its_function() -> None:
    records = [record("a", 600, instance="i-1", function="inference"),
               record("a", 900, instance="i-2", function="streaming"),
               record("gone", 60, at=T0 - 120)]
    [model] = live_models(records, T0)
    assert (model.name, model.expires_at, model.instances, model.function) == ("a", T0 + 900, 2, "streaming")


def test_preload_entries_are_pinned_and_a_bad_keep_alive_is_skipped_with_its_reason() -> None:
    """The warmer bug: one SKYLLAMA_PRELOAD entry that is no duration raised InvalidDuration and
    stopped every round; now it is left out with why, and the other entries still count."""
    pinned = pinned_models("smollm2:135m=bogus, all-minilm=10m, plain:1b, off:1b=0, kept:1b=-1",
                           KeepAlive.of_seconds(300))
    assert pinned.models == {"all-minilm": KeepAlive.of_seconds(600), "plain:1b": KeepAlive.of_seconds(300),
                             "kept:1b": KeepAlive.FOREVER}  # keep_alive 0 pins nothing
    assert pinned.skipped == ["smollm2:135m: SKYLLAMA_PRELOAD entry skipped: invalid duration 'bogus'"]


def test_a_round_warms_what_is_live_and_pinned_with_the_wire_forms_of_keep_alive(tmp_path: Any) -> None:
    settings = Settings.from_env({}, models=tmp_path, preload="smollm2:135m=bogus,all-minilm=10m", keep_alive="5m")
    decided = warm_round([record("a", -1), record("b", 600)], settings, T0)
    assert decided.plan.warm == {"a": 1, "all-minilm": 1, "b": 1} and decided.plan.provisioned == 1
    assert decided.reasons[0] == "smollm2:135m: SKYLLAMA_PRELOAD entry skipped: invalid duration 'bogus'"
    # a pinned model has no record, so no function of its own: the default inference function ("")
    assert decided.events == [
        ("", {"source": "skyllama.warmer", "models": [{"name": "all-minilm", "expires_at": T0 + 600,
                                                        "keep_alive": 600}]}),
        ("fn", {"source": "skyllama.warmer", "models": [{"name": "a", "expires_at": -1, "keep_alive": -1},
                                                         {"name": "b", "expires_at": T0 + 600, "keep_alive": 600}]})]
    summary = decided.summary(answered=1, actions=[])
    assert summary["models"] == ["a", "all-minilm", "b"] and summary["reasons"] == decided.reasons


def test_warm_up_events_carry_minus_one_for_forever() -> None:
    models = live_models([record("a", -1), record("b", 600, instance="i-2")], T0)
    decided = plan(models, {}, LIMITS, T0)
    events = warm_up_events(decided, {m.name: (m.expires_at, m.keep_alive) for m in models})
    assert events == [("fn", {"source": "skyllama.warmer", "models": [
        {"name": "a", "expires_at": -1, "keep_alive": -1},
        {"name": "b", "expires_at": T0 + 600, "keep_alive": 600}]})]
