"""The GPU gate: what the API answers on a GPU route before it forwards the request.

With ``InferenceAccelerator: gpu`` the stack's one API sends the inference paths through a VPC
link to the GPU service, which scales to zero. A request that arrives while no task runs cannot
wait for one (an instance and its model take minutes; the gateway's limit is one connection
attempt), and the CPU function is no fallback a REST API can pick per request. So the chosen
behaviour is **503 with Retry-After**, and the request is what brings the service up:

- The gate (the API's Lambda authorizer on those routes, ``functions/gpu_gate``) checks the API
  key against the same state table as every other route: an unknown key is the app's 401 and
  starts nothing (no one without a key can put a GPU instance on the bill).
- With a valid key and a running task: allowed. The app on the GPU service checks the key again,
  and meters and limits the request as every other route (same table).
- With a valid key and no running task: it records the **demand** (state kind ``gpu_demand``,
  live for :data:`DEMAND_SECONDS`), raises the service's desired count to 1 if it was 0, and
  denies: the gateway's ACCESS_DENIED response is a 503 with ``Retry-After`` (template.yaml).
  The warmer keeps a task while the demand is live (:func:`demand_until`, the warm policy), so
  the task outlives the client's retry and its model's keep_alive takes over from there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ...ports import Clock, StateStore
from ..access.keys import ApiKeys, Principal

DEMAND_KIND = "gpu_demand"
DEMAND_KEY = "gpu"
# Long enough for a GPU instance to boot, pull the image and load a model, and for the client's
# retries to find it: the task is kept for this long after the last request that found none.
DEMAND_SECONDS = 15 * 60.0
RETRY_AFTER_SECONDS = 60  # template.yaml's Retry-After on the gate's 503
# A running service is seen as running for this long: one DescribeServices per request would meet
# ECS's API rate limit under load, and a task that goes in that time is the gateway's 503 as well.
RUNNING_SEEN_SECONDS = 5.0


class ServiceTasks(Protocol):
    """The GPU service's task counts (ECS: ``skyllama.adapters.aws.capacity.EcsDesiredCount``)."""

    def counts(self) -> tuple[int, int]:
        """``(desired, running)``."""
        ...

    def set(self, count: int) -> None: ...


class Verdict(enum.Enum):
    ALLOW = "allow"
    STARTING = "starting"  # a valid key, no running task: 503 + Retry-After
    UNAUTHORIZED = "unauthorized"  # no live key: 401


@dataclass(frozen=True)
class GateAnswer:
    verdict: Verdict
    principal: Principal | None
    reason: str


class GpuGate:
    """Decides each GPU-route request; ``keys`` is ``None`` when auth is off (every caller passes)."""

    def __init__(self, keys: ApiKeys | None, tasks: ServiceTasks, state: StateStore, clock: Clock, *,
                 demand_seconds: float = DEMAND_SECONDS) -> None:
        self.keys, self.tasks, self.state, self.clock = keys, tasks, state, clock
        self.demand_seconds = demand_seconds
        self._running_until = 0.0

    def check(self, secret: str | None) -> GateAnswer:
        principal = self.keys.authenticate(secret) if self.keys is not None else None
        if self.keys is not None and principal is None:
            return GateAnswer(Verdict.UNAUTHORIZED, None, "no live API key")
        now = self.clock.now()
        if now < self._running_until:
            return GateAnswer(Verdict.ALLOW, principal, "GPU service running")
        desired, running = self.tasks.counts()
        if running > 0:
            self._running_until = now + RUNNING_SEEN_SECONDS
            return GateAnswer(Verdict.ALLOW, principal, f"GPU service running ({running} task(s))")
        until = now + self.demand_seconds
        self.state.put(DEMAND_KIND, DEMAND_KEY, {"since": now, "until": until}, expires_at=until)
        if desired == 0:
            self.tasks.set(1)
            return GateAnswer(Verdict.STARTING, principal, "GPU service at zero: desired count 0 -> 1")
        return GateAnswer(Verdict.STARTING, principal, f"GPU service starting ({desired} task(s) wanted)")


def demand_until(state: StateStore, now: float) -> float:
    """Until when a request the gate turned away asks for a GPU task (0: no live demand)."""
    item = state.get(DEMAND_KIND, DEMAND_KEY)
    until = float(item.get("until", 0.0)) if item else 0.0
    return until if until > now else 0.0
