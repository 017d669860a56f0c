"""The warm policy: from the fleet's live instance records to what the warmer does this round.

Pure: records, pinned models, limits and ``now`` in; a :class:`WarmPlan` out, every decision with
its reason. :func:`warm_round` is a whole round: ``SKYLLAMA_PRELOAD``'s pinned models (an entry
with a bad keep_alive is skipped with its reason, the others still count), the plan and the
warm-up events. When a model expires is :mod:`skyllama.keep_alive`'s. The warmer function
(EventBridge, every minute, below the platform's idle reclaim time) applies it:

- **Warm-ups**: each model whose keep_alive has not expired keeps as many instances warm as hold
  it now (at least one, at most ``max_per_model``): that many concurrent warm-up invocations that
  load the model if the instance lost it. A model stops being warmed when its records expire.
- **Provisioned capacity**: a model kept forever (negative keep_alive) or longer than
  ``provision_after`` needs an instance that the platform will not reclaim: provisioned
  concurrency on the Lambda alias, or a GPU service desired count, one per such model. It goes
  back to 0 when those models expire or are unloaded with keep_alive 0. The GPU service also
  keeps one task while any model is live (its containers are the warm instances), or while a
  request the GPU gate turned away at zero is recent (``gpu_demand``: see
  :mod:`skyllama.services.fleet.gpu_gate`), and scales to zero when neither is.
- **Cost guard**: ``max_total`` bounds the warm-ups, the provisioned concurrency and the desired
  count; models that expire last are served first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidDuration
from ...keep_alive import KeepAlive, expiry_to_wire
from ...settings import Settings, parse_model_map
from .records import InstanceRecord

WARM_UP_SOURCE = "skyllama.warmer"  # the ``source`` of a warm-up event (the inference function's switch)


@dataclass(frozen=True)
class LiveModel:
    """A model some instance holds, merged over its records."""

    name: str
    expires_at: float  # the latest of its records (epoch seconds); inf: forever
    keep_alive: KeepAlive  # the longest asked for
    instances: int  # records (instances holding it)
    function: str = ""  # the function of its latest record ("" for a container or unknown)


@dataclass(frozen=True)
class WarmLimits:
    provision_after: float  # seconds; a longer (or forever) keep_alive gets provisioned capacity
    max_per_model: int
    max_total: int

    @classmethod
    def of(cls, settings: Settings) -> WarmLimits:
        return cls(settings.warm_provision_after, settings.warm_max_per_model, settings.warm_max_total)


@dataclass
class WarmPlan:
    warm: dict[str, int] = field(default_factory=dict)  # model -> warm-up invocations this round
    provisioned: int = 0  # Lambda provisioned concurrency on the alias
    desired_count: int = 0  # GPU service tasks
    reasons: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)  # model -> function to invoke ("" = default)


@dataclass(frozen=True)
class Pinned:
    """``SKYLLAMA_PRELOAD``'s models with their keep_alive, and why any entry was left out."""

    models: dict[str, KeepAlive]
    skipped: list[str]


def pinned_models(preload: str, default: KeepAlive) -> Pinned:
    """Models pinned by ``SKYLLAMA_PRELOAD`` (no ``=``: ``default``); keep_alive 0 pins nothing.

    An entry whose keep_alive is no duration is skipped with its reason: one bad entry must not
    stop the warmer from keeping the others warm.
    """
    models: dict[str, KeepAlive] = {}
    skipped: list[str] = []
    for name, text in parse_model_map(preload).items():
        try:
            keep_alive = KeepAlive.parse(text) if text else default
        except InvalidDuration as e:
            skipped.append(f"{name}: SKYLLAMA_PRELOAD entry skipped: {e}")
            continue
        if not keep_alive.unload_now:
            models[name] = keep_alive
    return Pinned(models, skipped)


def live_models(records: Iterable[InstanceRecord], now: float) -> list[LiveModel]:
    """Merge live records per model; expired ones (past ``now``) are ignored."""
    merged: dict[str, LiveModel] = {}
    for record in records:
        if not record.live(now):
            continue
        name, seen = record.model, merged.get(record.model)
        if seen is None:
            merged[name] = LiveModel(name, record.expires_at, record.keep_alive, 1, record.function)
        else:
            longest = max(seen.keep_alive, record.keep_alive, key=lambda k: k.seconds)
            merged[name] = LiveModel(
                name, max(seen.expires_at, record.expires_at), longest, seen.instances + 1,
                record.function if record.expires_at > seen.expires_at else seen.function)
    return sorted(merged.values(), key=lambda m: (-m.expires_at, m.name))


def _describe(seconds: float) -> str:
    return str(KeepAlive.of_seconds(seconds))


def plan(models: list[LiveModel], pinned: Mapping[str, KeepAlive], limits: WarmLimits, now: float,
         gpu_demand: float = 0.0) -> WarmPlan:
    """What to warm and provision. ``pinned``: models kept by setting (SKYLLAMA_PRELOAD), with keep_alive;
    ``gpu_demand``: until when the GPU gate's last turned-away request wants a GPU task (0: none)."""
    result = WarmPlan()
    wanted = list(models)
    known = {m.name for m in models}
    for name, keep_alive in sorted(pinned.items()):
        if name not in known:
            wanted.append(LiveModel(name, math.inf, keep_alive, 0))  # pinned: never expires here
            result.reasons.append(f"{name}: pinned by SKYLLAMA_PRELOAD (keep_alive {keep_alive})")
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
        if model.keep_alive.outlasts(limits.provision_after):
            long_lived += 1
            result.reasons.append(f"{model.name}: keep_alive {model.keep_alive} > "
                                  f"{_describe(limits.provision_after)}: needs provisioned capacity")
    result.provisioned = min(long_lived, limits.max_total)
    result.desired_count = min(max(long_lived, 1 if wanted else 0), limits.max_total)
    if long_lived > limits.max_total:
        result.reasons.append(f"cost guard: provisioned capacity {long_lived} capped at {limits.max_total}")
    if gpu_demand > now and result.desired_count == 0 and limits.max_total:
        result.desired_count = 1
        result.reasons.append(f"GPU demand: a request found no GPU task ({gpu_demand - now:.0f}s left): 1 task")
    if not wanted and not result.desired_count:
        result.reasons.append("no live model: nothing warmed, provisioned capacity and GPU tasks 0")
    return result


Event = dict[str, Any]


def warm_up_events(plan: WarmPlan, live: Mapping[str, tuple[float, KeepAlive]]) -> list[tuple[str, Event]]:
    """``(target function, event)`` per warm instance: slot i names the models warmed on i+1 instances.

    ``live``: model -> (fleet expires_at, keep_alive asked); the event carries both in their wire
    form (``-1``: forever), which ``skyllama.http.warm_up`` reads back.
    """
    events = []
    for target in sorted(set(plan.targets.values())):
        models = {m: n for m, n in plan.warm.items() if plan.targets.get(m, "") == target}
        for slot in range(max(models.values(), default=0)):
            names = sorted(m for m, n in models.items() if n > slot)
            entries = [{"name": m, "expires_at": expiry_to_wire(live[m][0]), "keep_alive": live[m][1].to_wire()}
                       for m in names]
            events.append((target, {"source": WARM_UP_SOURCE, "models": entries}))
    return events


@dataclass(frozen=True)
class WarmRound:
    """One warmer round, decided: the plan, the warm-up events that carry it out, and every reason."""

    plan: WarmPlan
    events: list[tuple[str, Event]]
    skipped: list[str]  # SKYLLAMA_PRELOAD entries left out, with why (a warning each)

    @property
    def reasons(self) -> list[str]:
        return self.skipped + self.plan.reasons

    def summary(self, answered: int, actions: list[str]) -> dict[str, Any]:
        """The warmer's answer: what was planned and what was done."""
        return {"models": sorted(self.plan.warm), "warm_ups": len(self.events), "answered": answered,
                "provisioned": self.plan.provisioned, "desired_count": self.plan.desired_count,
                "actions": actions, "reasons": self.reasons}


def warm_round(records: Iterable[InstanceRecord], settings: Settings, now: float,
               gpu_demand: float = 0.0) -> WarmRound:
    """The fleet's live records, ``SKYLLAMA_PRELOAD`` (from ``settings``) and the GPU gate's demand
    (:func:`skyllama.services.fleet.gpu_gate.demand_until`) at ``now``: this round."""
    pinned = pinned_models(settings.preload, settings.keep_alive)
    models = live_models(records, now)
    decided = plan(models, pinned.models, WarmLimits.of(settings), now, gpu_demand)
    # a pinned model with no record is held for its own keep_alive from now; a recorded one until its record's expiry
    live = {name: (keep_alive.expires_at(now), keep_alive) for name, keep_alive in pinned.models.items()}
    live |= {m.name: (m.expires_at, m.keep_alive) for m in models}
    return WarmRound(decided, warm_up_events(decided, live), pinned.skipped)
