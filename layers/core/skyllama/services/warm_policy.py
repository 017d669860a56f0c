"""The warm policy: from the fleet's live instance records to what the warmer does this round.

Pure: records, pinned models, limits and ``now`` in; a :class:`WarmPlan` out, every decision with
its reason. The warmer function (EventBridge, every minute, below the platform's idle reclaim
time) applies it:

- **Warm-ups**: each model whose keep_alive has not expired keeps as many instances warm as hold
  it now (at least one, at most ``max_per_model``): that many concurrent warm-up invocations that
  load the model if the instance lost it. A model stops being warmed when its records expire.
- **Provisioned capacity**: a model kept forever (negative keep_alive) or longer than
  ``provision_after`` needs an instance that the platform will not reclaim: provisioned
  concurrency on the Lambda alias, or a GPU service desired count, one per such model. It goes
  back to 0 when those models expire or are unloaded with keep_alive 0. The GPU service also
  keeps one task while any model is live (its containers are the warm instances) and scales to
  zero when none is.
- **Cost guard**: ``max_total`` bounds the warm-ups, the provisioned concurrency and the desired
  count; models that expire last are served first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .fleet import model_expiry


@dataclass(frozen=True)
class LiveModel:
    """A model some instance holds, merged over its records."""

    name: str
    expires_at: float  # the latest of its records; inf: forever
    keep_alive: float  # the longest asked for; inf: forever
    instances: int  # records (instances holding it)
    function: str = ""  # the function of its latest record ("" for a container or unknown)


@dataclass(frozen=True)
class WarmLimits:
    provision_after: float  # seconds; a longer (or infinite) keep_alive gets provisioned capacity
    max_per_model: int
    max_total: int


@dataclass
class WarmPlan:
    warm: dict[str, int] = field(default_factory=dict)  # model -> warm-up invocations this round
    provisioned: int = 0  # Lambda provisioned concurrency on the alias
    desired_count: int = 0  # GPU service tasks
    reasons: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)  # model -> function to invoke ("" = default)


def live_models(records: Iterable[Mapping[str, Any]], now: float) -> list[LiveModel]:
    """Merge live records per model; expired ones (past ``now``) are ignored."""
    merged: dict[str, LiveModel] = {}
    for record in records:
        expiry = model_expiry(dict(record))
        if expiry <= now:
            continue
        raw = float(record.get("keep_alive", 0))
        keep_alive = math.inf if raw < 0 else raw
        name = str(record["model"])
        seen = merged.get(name)
        if seen is None:
            merged[name] = LiveModel(name, expiry, keep_alive, 1, str(record.get("function") or ""))
        else:
            latest = record if expiry > seen.expires_at else None
            merged[name] = LiveModel(
                name, max(seen.expires_at, expiry), max(seen.keep_alive, keep_alive), seen.instances + 1,
                str(latest.get("function") or "") if latest is not None else seen.function)
    return sorted(merged.values(), key=lambda m: (-m.expires_at, m.name))


def _long(keep_alive: float, limits: WarmLimits) -> bool:
    return math.isinf(keep_alive) or keep_alive > limits.provision_after


def _describe(seconds: float) -> str:
    return "forever" if math.isinf(seconds) else f"{seconds:g}s"


def plan(models: list[LiveModel], pinned: Mapping[str, float], limits: WarmLimits, now: float) -> WarmPlan:
    """What to warm and provision. ``pinned``: models kept by setting (SKYLLAMA_PRELOAD), with keep_alive."""
    result = WarmPlan()
    wanted = list(models)
    known = {m.name for m in models}
    for name, keep_alive in sorted(pinned.items()):
        if name not in known:
            wanted.append(LiveModel(name, math.inf, keep_alive, 0))
            result.reasons.append(f"{name}: pinned by SKYLLAMA_PRELOAD (keep_alive {_describe(keep_alive)})")
    budget = limits.max_total
    long_lived = 0
    for model in wanted:
        want = max(1, min(model.instances, limits.max_per_model)) if limits.max_per_model else 0
        given = min(want, budget)
        left = "forever" if math.isinf(model.expires_at) else f"{model.expires_at - now:.0f}s left"
        if given:
            result.warm[model.name] = given
            result.targets[model.name] = model.function
            budget -= given
            result.reasons.append(f"{model.name}: keep_alive not expired ({left}), {model.instances} instance(s) "
                                  f"hold it: warm {given}")
        if not limits.max_per_model:
            result.reasons.append(f"{model.name}: warm-ups off (max 0 per model)")
        elif given < want:
            result.reasons.append(f"{model.name}: cost guard ({limits.max_total} in total): "
                                  f"{want - given} warm-up(s) not sent")
        if _long(model.keep_alive, limits):
            long_lived += 1
            result.reasons.append(f"{model.name}: keep_alive {_describe(model.keep_alive)} > "
                                  f"{_describe(limits.provision_after)}: needs provisioned capacity")
    result.provisioned = min(long_lived, limits.max_total)
    result.desired_count = min(max(long_lived, 1 if wanted else 0), limits.max_total)
    if long_lived > limits.max_total:
        result.reasons.append(f"cost guard: provisioned capacity {long_lived} capped at {limits.max_total}")
    if not wanted:
        result.reasons.append("no live model: nothing warmed, provisioned capacity and GPU tasks 0")
    return result
