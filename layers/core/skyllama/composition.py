"""The composition root: settings in, wired services out. Nothing else builds adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .ports import BlobStore, Clock, ManifestStore, StateStore
from .services.catalog import Catalog
from .settings import Settings

if TYPE_CHECKING:
    from .engine.runner.pool import RunnerPool


@dataclass
class Services:
    """Everything a request handler may use, built once per process (``app.state.services``)."""

    settings: Settings
    blobs: BlobStore
    manifests: ManifestStore
    state: StateStore
    clock: Clock
    catalog: Catalog
    extras: dict[str, Any] = field(default_factory=dict)

    def runners(self) -> RunnerPool:
        """The runner processes' pool (started on first use)."""
        pool = self.extras.get("runners")
        if pool is None:
            from .engine.runner.pool import RunnerPool
            from .engine.runner.process import RunnerTimeouts

            s = self.settings
            pool = self.extras["runners"] = RunnerPool(
                spares=s.runner_spares, timeouts=RunnerTimeouts(load=s.load_timeout, prompt=s.runner_prompt_timeout,
                                                                token=s.runner_token_timeout))
        return pool

    def close(self) -> None:
        for closer in self.extras.get("closers", []):
            closer()
        if "runners" in self.extras:
            self.extras["runners"].close()


def build_services(
    settings: Settings,
    *,
    blobs: BlobStore | None = None,
    manifests: ManifestStore | None = None,
    state: StateStore | None = None,
    clock: Clock | None = None,
) -> Services:
    """Wire the stores named by ``settings.backend`` (or the ones passed in, for tests)."""
    clock = clock or Clock()
    jobs = None
    if settings.backend == "local":
        from .adapters.local.blobs import LocalBlobStore
        from .adapters.local.manifests import LocalManifestStore
        from .adapters.local.sqlite_state import SqliteStateStore

        blobs = blobs or LocalBlobStore(settings.models)
        manifests = manifests or LocalManifestStore(settings.models)
        state = state or SqliteStateStore(settings.state_path, clock=clock)
    else:
        from .adapters.aws.factory import build_aws_stores

        built = build_aws_stores(settings, clock=clock)
        blobs = blobs or built.blobs
        manifests = manifests or built.manifests
        state = state or built.state
        jobs = built.jobs
    services = Services(settings=settings, blobs=blobs, manifests=manifests, state=state, clock=clock,
                        catalog=Catalog(blobs, manifests))
    if settings.backend == "aws" and jobs is not None:
        services.extras["jobs"] = jobs  # long creates, pulls and pushes run in the worker function
    if settings.fleet_enabled:  # loaded models recorded for fleet /api/ps and the warmer
        from .services.fleet import InstanceRecorder

        services.extras["fleet"] = InstanceRecorder(state, clock)
    if settings.backend == "aws":
        from .adapters.aws.s3_blobs import S3BlobStore
        from .adapters.aws.s3_parts import S3PartStore

        if isinstance(blobs, S3BlobStore):  # pulls stream into S3 multipart, resumable across invocations
            services.extras["part_store"] = S3PartStore(blobs, state)
    return services
