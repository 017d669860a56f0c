"""Pull and push as worker jobs (the AWS deployment), each run cut to one invocation's time.

The worker runs one job at a time and synchronously; pull and push are async iterators.
:func:`events_until` drives one on a private event loop and stops it at the deadline (the
Lambda's remaining time less ``job_reserve_seconds``): the stream is cancelled, the part
uploads in flight finish and are recorded, and :class:`OutOfTime` tells ``jobs.run_job`` to
save the job and queue its continuation as a new message. A new message, rather than an
exception and SQS redelivery, because a redelivery waits out the queue's visibility timeout
(six times the worker's) and spends one of the few receives before the dead-letter queue,
while a long pull may need many rounds.

A pull continues from its checkpoint: the S3 multipart upload, part by part (``S3PartStore``,
scoped to the job so that two jobs never write into one upload). A push starts again at the
blob it was sending; every blob the registry already has costs one ``HEAD``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..access.ownership import Caller
from ..registry import pull, push
from ..registry.download import DownloadManager
from ..registry.transfers import Transfers

log = logging.getLogger(__name__)

Event = dict[str, Any]


class OutOfTime(Exception):
    """The invocation's time is spent: the job continues in a new message."""


def events_until(source: AsyncIterator[Event], deadline: float | None) -> Iterator[Event]:
    """The events of ``source`` until it ends, or :class:`OutOfTime` at ``deadline`` (monotonic)."""
    with asyncio.Runner() as runner:  # on close: cancels what is left (downloads) and waits for it
        try:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise OutOfTime
                try:
                    event = runner.run(asyncio.wait_for(anext(source), left))
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise OutOfTime from None
                yield event
        finally:
            try:
                runner.run(source.aclose())  # type: ignore[attr-defined]
            except Exception as e:  # noqa: BLE001 - the job's own error, if any, is already raised
                log.debug("closing a transfer stream: %s", type(e).__name__)


def transfer_events(transfers: Transfers, record: dict[str, Any], caller: Caller,
                    deadline: float | None) -> Iterator[Event]:
    """The progress of the pull or push job ``record`` (run for ``caller``), stopping at ``deadline``."""
    request = record["request"]
    model, insecure = str(request.get("model", "")), bool(request.get("insecure"))
    # a download manager's events and tasks belong to one event loop: one per run
    transfers = dataclasses.replace(transfers, downloads=DownloadManager())

    async def pulling() -> AsyncIterator[Event]:
        name, client = await pull.prepare(transfers, model, insecure, caller)
        async for event in pull.pull_model(transfers, name, client, caller, scope=record["id"]):
            yield event

    async def pushing() -> AsyncIterator[Event]:
        name, data, client = await push.prepare(transfers, model, insecure, caller)
        async for event in push.push_model(transfers, name, data, client):
            yield event

    yield from events_until(pulling() if record["type"] == "pull" else pushing(), deadline)
