"""The composition root: settings in, one frozen, typed runtime out. Nothing else builds adapters
or services, and no service imports this module: each receives what it uses through its
constructor.

Each deployment builds the part it needs: ``skyllama serve`` and the GPU service everything
(:func:`build_runtime`); the API function everything but inference (``inference=False``); the
inference function everything, with the runner pool it started before its imports; the worker
:func:`build_jobs`; the warmer only its fleet reader and capacity controls (``functions/warmer``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engine.base import Engine
from .engine.runner.pool import RunnerPool
from .engine.runner.process import RunnerTimeouts
from .errors import NotFound
from .option_bounds import OptionLimits
from .ports import BlobStore, Clock, JobQueue, ManifestStore, PartStore, StateStore
from .services.access.keys import ApiKeys
from .services.access.limits import KeyConcurrency
from .services.access.metering import Meter
from .services.access.ownership import Ownership
from .services.fleet.records import InstanceRecorder
from .services.inference.cancel import CancelRegistry
from .services.inference.scheduler import Scheduler
from .services.inference.service import Inference
from .services.metrics import Metrics
from .services.models.catalog import Catalog
from .settings import Settings

if TYPE_CHECKING:  # the control plane is imported only where it is built (not on Lambda's inference path)
    from .services.jobs.runner import JobServices
    from .services.models.create import ModelCreator
    from .services.registry.outbound import Outbound
    from .services.registry.server import RegistryServer
    from .services.registry.transfers import Transfers


@dataclass(frozen=True)
class Stores:
    """The ports' adapters: a folder and SQLite (``local``), or S3, DynamoDB and SQS (``aws``)."""

    blobs: BlobStore
    manifests: ManifestStore
    state: StateStore
    parts: PartStore  # an unfinished pull's parts (S3 multipart on AWS, resumable across invocations)
    jobs: JobQueue | None = None  # AWS: long creates, pulls and pushes run in the worker function
    closers: tuple[Callable[[], None], ...] = ()
    sweep_uploads: Callable[[float], int] | None = None  # local: remove upload leftovers older than n s (T-37)

    def close(self) -> None:
        for closer in self.closers:
            closer()


def _local_stores(settings: Settings, clock: Clock) -> Stores:
    from .adapters.local.blobs import LocalBlobStore
    from .adapters.local.manifests import LocalManifestStore
    from .adapters.local.parts import LocalPartStore
    from .adapters.local.sqlite_state import SqliteStateStore

    state = SqliteStateStore(settings.state_path, clock=clock)
    blobs = LocalBlobStore(settings.models)
    return Stores(blobs, LocalManifestStore(settings.models), state,
                  LocalPartStore(settings.models / ".skyllama" / "partial"), closers=(state.close,),
                  sweep_uploads=lambda age: blobs.sweep_partials(older_than=age))


def _aws_stores(settings: Settings, clock: Clock) -> Stores:
    from .adapters.aws.factory import build_aws_stores
    from .adapters.aws.s3_parts import S3PartStore

    aws = build_aws_stores(settings, clock=clock)
    return Stores(aws.blobs, aws.manifests, aws.state, S3PartStore(aws.blobs, aws.state), aws.jobs)


# Each backend's adapters are imported only when it is chosen (boto3 is not a local server's cost).
BACKENDS: dict[str, Callable[[Settings, Clock], Stores]] = {"local": _local_stores, "aws": _aws_stores}


def build_stores(settings: Settings, clock: Clock) -> Stores:
    """The adapters ``settings.backend`` names."""
    return BACKENDS[settings.backend](settings, clock)


def runner_pool(settings: Settings) -> RunnerPool:
    """Runner processes as the settings ask (start it early: its spare imports llama.cpp)."""
    return RunnerPool(spares=settings.runner_spares, timeouts=runner_timeouts(settings))


def runner_timeouts(settings: Settings) -> RunnerTimeouts:
    return RunnerTimeouts(load=settings.load_timeout, prompt=settings.runner_prompt_timeout,
                          token=settings.runner_token_timeout)


@dataclass(frozen=True)
class ControlPlane:
    """Creating, pulling and pushing models, the ``/v2/`` registry, and jobs: what the API function,
    the worker and ``skyllama serve`` run, and Lambda's inference function does not even import."""

    creator: ModelCreator
    transfers: Transfers
    registry: RegistryServer
    jobs: JobServices


def build_control(settings: Settings, stores: Stores, clock: Clock, catalog: Catalog, limits: OptionLimits,
                  runners: RunnerPool, outbound: Outbound | None = None) -> ControlPlane:
    from .services.jobs.runner import JobServices
    from .services.models.create import ModelCreator
    from .services.registry.download import DownloadManager
    from .services.registry.outbound import Outbound, OutboundPolicy
    from .services.registry.server import RegistryServer, UploadSessions
    from .services.registry.transfers import Transfers

    creator = ModelCreator(catalog, limits, native_quantize=runners.quantize)
    outbound = outbound or Outbound(OutboundPolicy.from_settings(settings))
    transfers = Transfers(settings, stores.blobs, stores.manifests, stores.state, catalog.ownership, stores.parts,
                          DownloadManager(), outbound)
    registry = RegistryServer(settings, stores.blobs, stores.manifests, catalog.ownership,
                              UploadSessions(stores.blobs, clock, settings.registry_upload_ttl))
    return ControlPlane(creator, transfers, registry, JobServices(stores.state, clock, creator, transfers, stores.jobs))


class NotServedHere(NotFound):
    """A part of the runtime this process did not build: a deployment that serves no such route
    (API Gateway sends it to another function)."""


@dataclass(frozen=True)
class Runtime:
    """Everything one process serves with, built once (:func:`build_runtime`)."""

    settings: Settings
    clock: Clock
    stores: Stores
    limits: OptionLimits
    ownership: Ownership
    catalog: Catalog
    keys: ApiKeys
    meter: Meter
    concurrency: KeyConcurrency
    metrics: Metrics
    cancels: CancelRegistry
    control: ControlPlane | None  # None where this process creates and transfers nothing (Lambda inference)
    fleet: InstanceRecorder | None
    runners: RunnerPool
    scheduler: Scheduler | None  # None where this process serves no inference (the API function)
    inference: Inference | None

    def _control(self) -> ControlPlane:
        if self.control is None:
            raise NotServedHere("this process serves no create, pull, push or registry")
        return self.control

    @property
    def creator(self) -> ModelCreator:
        return self._control().creator

    @property
    def transfers(self) -> Transfers:
        return self._control().transfers

    @property
    def registry(self) -> RegistryServer:
        return self._control().registry

    @property
    def jobs(self) -> JobServices:
        return self._control().jobs

    @property
    def blobs(self) -> BlobStore:
        return self.stores.blobs

    @property
    def manifests(self) -> ManifestStore:
        return self.stores.manifests

    @property
    def state(self) -> StateStore:
        return self.stores.state

    async def aclose(self) -> None:
        """Server shutdown, on the event loop: unload the models, stop the runners."""
        if self.scheduler is not None:
            await self.scheduler.close()
        self.close()

    def close(self) -> None:
        self.runners.close()
        self.stores.close()


def build_runtime(settings: Settings, *, stores: Stores | None = None, clock: Clock | None = None,
                  engine: Engine | None = None, runners: RunnerPool | None = None, inference: bool = True,
                  control: bool = True, outbound: Outbound | None = None) -> Runtime:
    """Wire the whole process from ``settings``. Tests pass their own ``stores``, a fake
    ``engine`` or an ``outbound`` transport; Lambda's inference function passes the ``runners``
    it started first and no ``control`` plane; the API function no ``inference``."""
    clock = clock or Clock()
    stores = stores or build_stores(settings, clock)
    if runners is None:
        runners = runner_pool(settings) if engine is None and inference else RunnerPool(spares=0)
    else:
        runners.configure(runner_timeouts(settings), settings.runner_spares)
    limits = OptionLimits.from_settings(settings)
    ownership = Ownership(stores.state, stores.manifests)
    catalog = Catalog(stores.blobs, stores.manifests, ownership)
    fleet = InstanceRecorder(stores.state, clock) if settings.fleet_enabled else None
    scheduler = Scheduler(settings, catalog, engine or runners, clock=clock, observer=fleet) \
        if inference else None
    metrics = Metrics(scheduler, emf=settings.emf_enabled)
    return Runtime(
        settings=settings, clock=clock, stores=stores, limits=limits, ownership=ownership, catalog=catalog,
        keys=ApiKeys(stores.state, clock=clock, cache_seconds=settings.auth_cache_seconds),
        meter=Meter(stores.state, clock=clock, emf=settings.emf_enabled),
        concurrency=KeyConcurrency(settings.max_concurrent_per_key), metrics=metrics, cancels=CancelRegistry(),
        control=build_control(settings, stores, clock, catalog, limits, runners, outbound) if control else None,
        fleet=fleet, runners=runners, scheduler=scheduler,
        inference=Inference(settings, catalog, scheduler, limits, metrics) if scheduler else None,
    )


def build_jobs(settings: Settings, *, stores: Stores | None = None, clock: Clock | None = None) -> JobServices:
    """The worker function's part: jobs, with what create, pull and push need (no inference,
    no keys or metering: the API function checked the caller when the job was submitted)."""
    clock = clock or Clock()
    stores = stores or build_stores(settings, clock)
    catalog = Catalog(stores.blobs, stores.manifests, Ownership(stores.state, stores.manifests))
    limits = OptionLimits.from_settings(settings)
    return build_control(settings, stores, clock, catalog, limits, RunnerPool(spares=0)).jobs
