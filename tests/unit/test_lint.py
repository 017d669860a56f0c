"""ruff and mypy run with the tests, so CI (which runs the README's test command) enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing_in_the_package() -> None:
    result = run("mypy", "layers/core/skyllama")
    assert result.returncode == 0, result.stdout + result.stderr


# The service layer, the ports and the value objects are held to mypy --strict (issue 18).
STRICT = ["layers/core/skyllama/services", "layers/core/skyllama/ports.py", "layers/core/skyllama/names.py",
          "layers/core/skyllama/digests.py", "layers/core/skyllama/durations.py", "layers/core/skyllama/keep_alive.py",
          "layers/core/skyllama/manifest.py", "layers/core/skyllama/option_bounds.py", "layers/core/skyllama/errors.py"]


def test_mypy_strict_on_services_ports_and_value_objects() -> None:
    result = run("mypy", "--strict", *STRICT)
    assert result.returncode == 0, result.stdout + result.stderr
