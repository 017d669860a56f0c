"""Overload, as the probe tried it (issue 17): a fresh server, a queue limit of 2, 16 concurrent
clients of mixed routes. Every answer is a 2xx or, above the queue limit, a 503 (never a 500 from
a lazy import raced by concurrent first requests), no connection is dropped, no blob is lost or
corrupted. A bounded variant of ``tests/bench/load_test.py --max-queue 2 --concurrency 16``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import load_test  # noqa: E402


@pytest.mark.parametrize("run", range(3))
def test_above_the_queue_limit_only_503s(run: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = load_test.main(["--max-queue", "2", "--concurrency", "16", "--requests", "150", "--duration", "60"])
    report = json.loads(capsys.readouterr().out)
    assert report["dropped"] == 0, report["statuses"]
    assert report["5xx"] == report["503"], report["statuses"]
    assert report["verify"]["corrupted"] == report["verify"]["lost"] == 0
    assert report["requests"] == 150
    assert code == 0
