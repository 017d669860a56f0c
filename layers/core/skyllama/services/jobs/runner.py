"""Long work as jobs: records and progress in the StateStore, run by a worker, followed by polling.

A job is a record of kind ``job`` keyed by its id::

    {"id", "type": "create"|"pull"|"push", "status": "queued"|"running"|"success"|"error",
     "request": {...}, "owner": {...} | None, "events": [last events], "seen": n,
     "attempts": n, "error": str | None, "step": str | None, "created_at", "updated_at"}

The queue message carries only ``{"id", "type", "step"}``; the request lives in the record (SQS
messages stay small, and a redelivered message reads the same request). ``step`` names the one
message that may run the job now: each submission and each continuation gets a new one, so the
worker's idempotency (keyed on id and step) lets a continuation run and a stale or duplicate
message does nothing.

:func:`run_job` is idempotent and resumable on the job id: a finished job is not run again; a
job cut off midway (Lambda timeout, crash) is run again from the top, and every layer blob it
already committed is skipped (the create path only writes blobs that do not exist), while the
manifest is written last, so a partial run never leaves a dangling or duplicate model. Errors
a client caused (4xx) and a registry's bad answers end the job; anything else is re-raised so
SQS redelivers the message. Pull and push jobs stop before the invocation's deadline and queue
their continuation (``transfer_jobs``).

:func:`wait_for_job` is the API's side: an event stream that polls the record and yields each
new progress event, ending with ``success`` or an ``{"error": ...}`` raised as the job's error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import BadRequest, NotFound, SkyllamaError
from ...ports import Clock, JobQueue, StateStore
from ..access.keys import Principal
from ..access.ownership import Caller
from ..models.create import ModelCreator
from ..registry.client import RegistryError
from ..registry.transfers import Transfers
from .transfers import OutOfTime, transfer_events

log = logging.getLogger(__name__)

Event = dict[str, Any]
JOB_KIND = "job"
TERMINAL = frozenset({"success", "error"})
KEEP_EVENTS = 50
JOB_TTL = 7 * 24 * 3600
WRITE_EVERY = 0.5  # seconds between progress writes (every event is still kept in order)
POLL_EVERY = 0.5
MAX_ATTEMPTS = 96  # runs of one job (about a day of 15-minute rounds): a stalled upstream ends, not loops


@dataclass(frozen=True)
class JobServices:
    """What jobs are run with: their records, the clock, and the services a job calls."""

    state: StateStore
    clock: Clock
    creator: ModelCreator
    transfers: Transfers
    queue: JobQueue | None  # where jobs go (AWS); None: nothing is queued, creates run in the request

    @property
    def settings(self) -> Any:
        return self.transfers.settings


class JobNotFound(NotFound):
    """No such job (or it expired)."""


class JobFailed(SkyllamaError):
    """The job ended with an error; ``status`` is what the job recorded (400 for a client error)."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def new_job(state: StateStore, job_type: str, request: dict[str, Any], caller: Caller, *, now: float,
            job_id: str | None = None, step: str | None = None) -> str:
    """Record a queued job for ``caller`` and return its id."""
    job_id = job_id or uuid.uuid4().hex
    owner = None if caller is None else {
        "owner": caller.owner, "key_id": caller.key_id, "scopes": sorted(caller.scopes)}
    record: dict[str, Any] = {"id": job_id, "type": job_type, "status": "queued", "request": request, "owner": owner,
              "events": [], "seen": 0, "attempts": 0, "error": None, "step": step, "created_at": now,
              "updated_at": now}
    state.put(JOB_KIND, job_id, record, expires_at=now + JOB_TTL)
    return job_id


def submit_create(jobs: JobServices, request: dict[str, Any], queue: JobQueue, caller: Caller) -> str:
    """Validate a create request now (a 4xx before anything is queued), then queue it as a job."""
    jobs.creator.plan(request, caller)
    job_id = new_job(jobs.state, "create", request, caller, now=jobs.clock.now())
    queue.send({"id": job_id, "type": "create"})
    return job_id


def request_job_id(job_type: str, request: dict[str, Any], caller: Caller) -> str:
    """The same request (by the same owner) always names the same job, so a client that lost its
    stream (API Gateway's 29 s limit) sends the request again and follows the job it started."""
    owner = None if caller is None else caller.owner
    text = json.dumps({"type": job_type, "request": request, "owner": owner}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def submit_or_attach(jobs: JobServices, job_type: str, request: dict[str, Any], queue: JobQueue, caller: Caller, *,
                     rerun_success: bool = False) -> str:
    """Queue the request as a job, or return the id of the same request's job when one is live
    (or, unless ``rerun_success``, finished well: a pull runs again to look for a newer model)."""
    job_id = request_job_id(job_type, request, caller)
    record = jobs.state.get(JOB_KIND, job_id)
    again = {"error", "success"} if rerun_success else {"error"}
    if record is not None and record.get("status") not in again:
        return job_id
    step = uuid.uuid4().hex
    new_job(jobs.state, job_type, request, caller, now=jobs.clock.now(), job_id=job_id, step=step)
    queue.send({"id": job_id, "type": job_type, "step": step})
    return job_id


async def follow_job(state: StateStore, job_id: str, *, timeout: float, announce: bool = True) -> AsyncIterator[Event]:
    """The job's progress for an API response: its events, ending with ``success``, or (after
    ``timeout``) a line telling the client to send the same request again to keep following.
    ``announce`` first sends a line naming the job and its state as recorded (``queued``, or
    ``running`` for a client that rejoins a job a worker has started; not for pull and push,
    whose lines are Ollama's)."""
    if announce:
        record = await asyncio.to_thread(get_job, state, job_id)
        yield {"status": f"job {job_id} {record.get('status') or 'queued'}", "job": job_id}
    try:
        async for event in wait_for_job(state, job_id, timeout=timeout):
            yield event
    except TimeoutError:
        yield {"status": f"job {job_id} is still running: send the same request again to follow it",
               "job": job_id}


class PoisonMessage(BadRequest):
    """A queue message that is not a job (``"Test message."``, a hand-sent body): the worker
    reports it as a failed item, so SQS redelivers it and, after its retries, moves it to the DLQ."""


def parse_message(body: str) -> dict[str, Any]:
    """A job message (``{"id", "type", "step"?}``) from an SQS body, or :class:`PoisonMessage`."""
    try:
        job = json.loads(body)
    except ValueError:
        raise PoisonMessage(f"not a job message (not JSON): {body[:80]!r}") from None
    if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not job["id"] \
            or not isinstance(job.get("type"), str) or not isinstance(job.get("step", ""), str | None):
        raise PoisonMessage(f"not a job message (needs string 'id' and 'type'): {body[:80]!r}")
    return job


def get_job(state: StateStore, job_id: str) -> dict[str, Any]:
    record = state.get(JOB_KIND, job_id)
    if record is None:
        raise JobNotFound(f"job '{job_id}' not found")
    return record


class Progress:
    """Appends events to the job record, writing at most every ``WRITE_EVERY`` seconds."""

    def __init__(self, state: StateStore, record: dict[str, Any], clock: Callable[[], float]) -> None:
        self.state, self.record, self.clock = state, record, clock
        self._written = 0.0

    def add(self, event: Event) -> None:
        if self.record["events"] and self.record["events"][-1] == event:
            return  # a progress tick with nothing new (pull reports every 0.1 s) tells a follower nothing
        self.record["events"] = (self.record["events"] + [event])[-KEEP_EVENTS:]
        self.record["seen"] = int(self.record.get("seen", 0)) + 1
        if time.monotonic() - self._written >= WRITE_EVERY:
            self.save()

    def save(self, **fields: Any) -> None:
        self.record.update(fields, updated_at=self.clock())
        self.state.put(JOB_KIND, self.record["id"], self.record,
                       expires_at=float(self.record.get("created_at", self.clock())) + JOB_TTL)
        self._written = time.monotonic()


def run_job(jobs: JobServices, job_id: str, *, step: str | None = None, deadline: float | None = None,
            queue: JobQueue | None = None, on_event: Callable[[Event], None] | None = None) -> dict[str, Any]:
    """Run (or finish, or skip) the job ``job_id`` for the message ``step``; returns its final
    ``{"id", "status", ...}``. A pull or push still going at ``deadline`` (monotonic) is saved
    and continued by a new message on ``queue`` (status ``continued``)."""
    record = get_job(jobs.state, job_id)
    # a message without a step (sent before steps existed) still runs its job
    if record["status"] in TERMINAL or (step is not None and record.get("step") != step):
        log.info("job %s is %s (message step %s, job step %s): nothing to run", job_id, record["status"],
                 step, record.get("step"))
        return _summary(record)
    progress = Progress(jobs.state, record, jobs.clock.now)
    progress.save(status="running", attempts=int(record.get("attempts", 0)) + 1, error=None)
    try:
        for event in _events(jobs, record, _submitter(record.get("owner")), deadline):
            progress.add(event)
            if on_event is not None:
                on_event(event)
    except OutOfTime:
        if int(progress.record.get("attempts", 0)) >= MAX_ATTEMPTS:
            progress.save(status="error", error=f"job did not finish in {MAX_ATTEMPTS} runs", error_status=504)
            return _summary(progress.record)
        return _continue(progress, queue)
    except SkyllamaError as e:
        status = getattr(e, "status", 500)
        if status >= 500 and not isinstance(e, BadRequest | RegistryError):
            progress.save(error=e.message)
            raise  # transient (a store error): SQS redelivers, the next attempt resumes
        progress.save(status="error", error=e.message, error_status=status)
        return _summary(progress.record)
    except Exception as e:
        progress.save(error=f"internal error ({type(e).__name__}); retrying")
        raise
    progress.save(status="success")
    return _summary(progress.record)


def _continue(progress: Progress, queue: JobQueue | None) -> dict[str, Any]:
    """Save the job as queued under a new step and send that step's message."""
    if queue is None:
        raise SkyllamaError("job ran out of time and no queue is wired to continue it")
    old, step = progress.record.get("step"), uuid.uuid4().hex
    progress.save(status="queued", step=step)
    try:
        queue.send({"id": progress.record["id"], "type": progress.record["type"], "step": step})
    except BaseException:
        progress.save(status="running", step=old)  # the old message is redelivered instead
        raise
    return {**_summary(progress.record), "status": "continued"}


def _events(jobs: JobServices, record: dict[str, Any], caller: Caller, deadline: float | None) -> Iterator[Event]:
    if record.get("type") in ("pull", "push"):
        yield from transfer_events(jobs.transfers, record, caller, deadline)
        return
    if record.get("type") != "create":
        raise BadRequest(f"unknown job type {str(record.get('type'))[:40]!r}")
    if int(record.get("attempts", 1)) > 1:
        yield {"status": f"resuming (attempt {record['attempts']})"}
    plan = jobs.creator.plan(dict(record["request"]), caller)
    yield from jobs.creator.run(plan)


def _submitter(owner: dict[str, Any] | None) -> Caller:
    """The principal that submitted the job: ownership rules apply to the job as in the API."""
    if not owner:
        return None
    return Principal(owner=owner["owner"], key_id=owner.get("key_id", ""), scopes=frozenset(owner.get("scopes", ())))


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record["id"], "status": record["status"], "error": record.get("error"),
            "attempts": record.get("attempts", 0)}


async def wait_for_job(state: StateStore, job_id: str, *, poll: float = POLL_EVERY,
                       timeout: float | None = None) -> AsyncIterator[Event]:
    """Yield the job's progress events as they are recorded, polling every ``poll`` seconds.

    Ends after the job's last event when it succeeds; raises :class:`JobFailed` when it failed
    and ``TimeoutError`` after ``timeout`` seconds.
    """
    seen = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = await asyncio.to_thread(get_job, state, job_id)
        total = int(record.get("seen", 0))
        events = record.get("events", [])
        for event in events[max(0, len(events) - (total - seen)):]:
            yield event
        seen = total
        if record["status"] == "success":
            return
        if record["status"] == "error":
            raise JobFailed(str(record.get("error") or "job failed"), int(record.get("error_status", 500)))
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} still {record['status']}")
        await asyncio.sleep(poll)


def idempotent_runner(jobs: JobServices, *, table: str, dynamodb: Any, queue: JobQueue | None = None,
                      expires_after: int = JOB_TTL) -> tuple[Callable[..., dict[str, Any]], Any]:
    """``(run, config)``: ``run(job=..., deadline=...)`` runs a job message at most once
    (Powertools Idempotency), recorded in the state table itself; ``queue`` takes the
    continuations of pull and push jobs.

    Powertools' records use the table's own key schema: ``pk`` is the static
    ``idempotency#<function>`` and ``sk`` the hashed job id, so they never mix with the state
    store's kinds; their expiry is the table's TTL attribute ``expires_at``. The key is the job id
    and the message's step, so a job's continuation runs while a duplicate does not. A second delivery
    while the first still runs is refused (``IdempotencyAlreadyInProgressError``: SQS retries
    later); a run cut off by a timeout leaves its record in progress only until the Lambda's
    deadline (``config.register_lambda_context(context)``), after which a redelivery resumes it.
    """
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    persistence = DynamoDBPersistenceLayer(table_name=table, key_attr="pk", sort_key_attr="sk",
                                           expiry_attr="expires_at", boto3_client=dynamodb)
    config = IdempotencyConfig(event_key_jmespath="[id, step]", raise_on_no_idempotency_key=True,
                               expires_after_seconds=expires_after)

    @idempotent_function(data_keyword_argument="job", persistence_store=persistence, config=config)  # type: ignore[untyped-decorator]
    def run(job: dict[str, Any], deadline: float | None = None) -> dict[str, Any]:
        return run_job(jobs, str(job["id"]), step=job.get("step"), deadline=deadline, queue=queue)

    return run, config
