"""Garbage collection of blobs no manifest references (T-22).

A blob is deleted only when all of these hold:

- no readable manifest references it, and *every* manifest is readable: while any manifest is
  unreadable or corrupt its references are unknown, so :func:`collect_garbage` refuses to run
  (:class:`GCRefused`) rather than guess;
- it is not in flight: not named in ``in_flight`` (downloads, uploads and creates under way);
- it has been seen unreferenced for at least ``grace_seconds``. The ports expose no modification
  time, so the grace period is measured from the first run that saw the blob unreferenced (a
  mark kept in the state store): a blob uploaded a moment ago for a create that has not written
  its manifest yet is marked, not deleted, and the mark is dropped once a manifest uses it.

Only committed blobs are ever candidates: :meth:`BlobStore.list` yields validated digests under
``blobs/sha256-<hex>`` (never temporary, partial or foreign keys) and :meth:`BlobStore.delete`
takes a :class:`Digest`, so nothing outside that prefix can be named, let alone deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...digests import Digest
from ...errors import Conflict, SkyllamaError
from ...manifest import Manifest
from ...ports import BlobStore, Clock, ManifestStore, StateStore

log = logging.getLogger(__name__)

MARK_KIND = "gc_mark"
DEFAULT_GRACE_SECONDS = 3600.0


class GCRefused(Conflict):
    """Garbage collection will not run while any manifest is unreadable (its references are unknown)."""


@dataclass
class GCReport:
    """What one run did: digests deleted, kept because referenced, and kept for the grace period."""

    deleted: list[Digest] = field(default_factory=list)
    referenced: int = 0
    waiting: list[Digest] = field(default_factory=list)
    in_flight: list[Digest] = field(default_factory=list)


def referenced_blobs(manifests: ManifestStore) -> set[Digest]:
    """Every digest a manifest references; raises :class:`GCRefused` if any manifest is unreadable."""
    stored = manifests.list()
    problems = manifests.problems()
    if problems:
        raise GCRefused(f"garbage collection refused: {len(problems)} unreadable manifest(s)")
    used: set[Digest] = set()
    for item in stored:
        try:
            used.update(Manifest.parse(item.data).blobs())
        except SkyllamaError:
            raise GCRefused(f"garbage collection refused: manifest {item.name.display()} "
                            "is corrupt") from None
    return used


def collect_garbage(
    blobs: BlobStore,
    manifests: ManifestStore,
    state: StateStore,
    *,
    clock: Clock | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    in_flight: Iterable[Digest] = (),
    dry_run: bool = False,
) -> GCReport:
    """Delete blobs unreferenced for longer than ``grace_seconds`` (see the module docstring)."""
    clock = clock or Clock()
    now = clock.now()
    busy = set(in_flight)
    # Blobs are listed before manifests are read: a blob committed after the listing is not a
    # candidate, and a manifest written after it can only add references.
    present = set(blobs.list())
    used = referenced_blobs(manifests)
    report = GCReport(referenced=len(present & used))
    for key, _item in state.query(MARK_KIND):
        try:
            marked = Digest(key)
        except SkyllamaError:
            continue
        if marked in used or marked not in present:
            state.delete(MARK_KIND, key)
    due: list[Digest] = []
    for digest in sorted(present - used):
        if digest in busy:
            report.in_flight.append(digest)
            continue
        mark = state.get(MARK_KIND, digest.hex)
        if mark is None:
            state.put(MARK_KIND, digest.hex, {"first_seen": now})
            report.waiting.append(digest)
        elif now - float(mark.get("first_seen", now)) < grace_seconds:
            report.waiting.append(digest)
        else:
            due.append(digest)
    if dry_run or not due:
        report.deleted.extend(due)
        return report
    used = referenced_blobs(manifests)  # re-read: a manifest written meanwhile rescues its blobs
    for digest in due:
        if digest not in used and blobs.delete(digest):
            report.deleted.append(digest)
        state.delete(MARK_KIND, digest.hex)
    if report.deleted:
        log.info("garbage collection deleted %d blob(s)", len(report.deleted))
    return report
