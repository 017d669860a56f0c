"""What the warmer acts on: warm-up invocations, Lambda provisioned concurrency, GPU service tasks.

The two capacities take a target and set it only when it differs from what is there, so a warmer
round that changes nothing costs two reads. Errors are returned as text for the warmer's log (a
missing permission or alias must not stop the warm-ups). :class:`WarmerControls` holds all three,
with their clients built once from settings (at the warmer function's import).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ...settings import Settings
from ._common import error_code

log = logging.getLogger(__name__)
WARM_UP_WAIT_S = 50  # the warmer's own timeout is 60 s; an unanswered warm-up still loads its model


class LambdaProvisioned:
    """Provisioned concurrency of one alias (or version) of the inference function."""

    kind = "provisioned concurrency"

    def __init__(self, client: Any, function: str, qualifier: str) -> None:
        self.client, self.function, self.qualifier = client, function, qualifier

    def current(self) -> int:
        try:
            found = self.client.get_provisioned_concurrency_config(FunctionName=self.function,
                                                                    Qualifier=self.qualifier)
        except ClientError as e:
            if error_code(e) == "ProvisionedConcurrencyConfigNotFoundException":
                return 0
            raise
        return int(found.get("RequestedProvisionedConcurrentExecutions", 0))

    def set(self, count: int) -> None:
        if count > 0:
            self.client.put_provisioned_concurrency_config(
                FunctionName=self.function, Qualifier=self.qualifier, ProvisionedConcurrentExecutions=count)
        else:  # 0 is not a valid setting: the configuration is removed
            self.client.delete_provisioned_concurrency_config(FunctionName=self.function, Qualifier=self.qualifier)


class EcsDesiredCount:
    """Desired count of the GPU inference service (its capacity provider scales the instances)."""

    kind = "GPU service desired count"

    def __init__(self, client: Any, cluster: str, service: str) -> None:
        self.client, self.cluster, self.service = client, cluster, service

    def current(self) -> int:
        return self.counts()[0]

    def counts(self) -> tuple[int, int]:
        """``(desired, running)`` tasks (the GPU gate's question: is one running now?)."""
        found = self.client.describe_services(cluster=self.cluster, services=[self.service])
        services = found.get("services", [])
        if not services:
            return 0, 0
        return int(services[0]["desiredCount"]), int(services[0].get("runningCount", 0))

    def set(self, count: int) -> None:
        self.client.update_service(cluster=self.cluster, service=self.service, desiredCount=count)


def apply(capacity: LambdaProvisioned | EcsDesiredCount, target: int) -> str:
    """Set ``target`` if it differs; a line for the log either way."""
    try:
        now = capacity.current()
        if now == target:
            return f"{capacity.kind} stays {target}"
        capacity.set(target)
        return f"{capacity.kind} {now} -> {target}"
    except (ClientError, BotoCoreError) as e:
        return f"{capacity.kind} not changed: {error_code(e) or type(e).__name__}"


class LambdaWarmUps:
    """Warm-up invocations of the inference function (or the function a record names)."""

    def __init__(self, client: Any, function: str, alias: str) -> None:
        self.client, self.function, self.alias = client, function, alias

    def send(self, events: list[tuple[str, dict[str, Any]]]) -> int:
        """Send ``(target, event)`` pairs at once (concurrent, so they land on distinct instances);
        how many were answered."""
        if not events:
            return 0
        with ThreadPoolExecutor(max_workers=min(len(events), 16)) as pool:
            return sum(pool.map(lambda pair: self._invoke(*pair), events))

    def _invoke(self, target: str, event: dict[str, Any]) -> bool:
        function = target or self.function
        kwargs: dict[str, Any] = {"FunctionName": function, "Payload": json.dumps(event).encode()}
        if function == self.function and self.alias:
            kwargs["Qualifier"] = self.alias
        try:
            self.client.invoke(InvocationType="RequestResponse", **kwargs)
            return True
        except Exception as e:  # noqa: BLE001 - a slow or failed warm-up is logged, the round goes on
            log.warning("warm-up of %s not answered: %s", function, type(e).__name__)
            return False


@dataclass(frozen=True)
class WarmerControls:
    """The warm-ups and capacities named by settings (none configured: nothing is done)."""

    warm_ups: LambdaWarmUps | None
    provisioned: LambdaProvisioned | None
    gpu_tasks: EcsDesiredCount | None

    @classmethod
    def from_settings(cls, settings: Settings, client: Callable[..., Any] | None = None) -> WarmerControls:
        """Clients at ``aws_endpoint_url`` when set; ``client`` (``boto3.client``'s signature) for tests."""
        if client is None:
            import boto3

            client = boto3.client
        endpoint = settings.aws_endpoint_url or None
        function, alias = settings.inference_function, settings.inference_alias
        warm_ups = provisioned = gpu_tasks = None
        if function:
            invoke = client("lambda", endpoint_url=endpoint,
                            config=Config(read_timeout=WARM_UP_WAIT_S, retries={"max_attempts": 1}))
            warm_ups = LambdaWarmUps(invoke, function, alias)
            if alias:
                provisioned = LambdaProvisioned(client("lambda", endpoint_url=endpoint), function, alias)
        if settings.gpu_cluster and settings.gpu_service:
            gpu_tasks = EcsDesiredCount(client("ecs", endpoint_url=endpoint), settings.gpu_cluster,
                                        settings.gpu_service)
        return cls(warm_ups, provisioned, gpu_tasks)

    def warm(self, events: list[tuple[str, dict[str, Any]]]) -> int:
        """Send the warm-ups; how many were answered (0 with no inference function)."""
        return self.warm_ups.send(events) if self.warm_ups is not None else 0

    def set_capacity(self, provisioned: int, desired_count: int) -> list[str]:
        """Set both targets where configured; a line per capacity for the log."""
        targets = ((self.provisioned, provisioned), (self.gpu_tasks, desired_count))
        return [apply(capacity, target) for capacity, target in targets if capacity is not None]
