"""Schema-driven API fuzzing (schemathesis) of every route in the OpenAPI document, against a real
server on 127.0.0.1 (``run_server``, the fake engine, pulls limited to an unreachable allowlist so
nothing leaves the machine): no 5xx, no hang (each call has a 10 s timeout). CI runs a bounded
number of examples per operation; the long variant is
``pytest -m slow tests/security/test_fuzz_api.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from serving import RunningServer, run_server
from skyllama.engine.fake import FakeEngine

CALL_TIMEOUT = 10


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder: Path = tmp_path_factory.mktemp("fuzz-models")
    with run_server(folder, registry_allowlist="registry.invalid", max_request_bytes=1 << 20,
                    max_blob_bytes=1 << 20, engine=FakeEngine()) as server:
        yield server


@pytest.fixture(scope="module")
def operations(fuzz_server: RunningServer) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operations: list[Any], examples: int) -> None:
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            response = case.call(timeout=CALL_TIMEOUT)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Exception as e:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{operation.method.upper()} {operation.path}: {str(e)[:400]}")
    assert failures == [], "\n".join(failures)


def test_no_route_answers_5xx_or_hangs(operations: list[Any]) -> None:
    assert len(operations) >= 20
    _fuzz(operations, 6)


@pytest.mark.slow
def test_no_route_answers_5xx_or_hangs_long(operations: list[Any]) -> None:
    _fuzz(operations, 200)
