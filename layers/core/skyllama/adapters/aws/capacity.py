"""Warm capacity the warmer raises and lowers: Lambda provisioned concurrency, GPU service tasks.

Both take a target and set it only when it differs from what is there, so a warmer round that
changes nothing costs two reads. Errors are returned as text for the warmer's log (a missing
permission or alias must not stop the warm-ups).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ._common import error_code


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
        found = self.client.describe_services(cluster=self.cluster, services=[self.service])
        services = found.get("services", [])
        return int(services[0]["desiredCount"]) if services else 0

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
