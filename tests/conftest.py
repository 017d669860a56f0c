"""Shared fixtures: isolated environment, demo-seeded model folders, real servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving import RunningServer, clone_models, run_server
from skyllama.engine.fake import FakeEngine

OLLAMA_VARS = [k for k in os.environ if k.startswith(("OLLAMA_", "SKYLLAMA_")) and k != "SKYLLAMA_DEMO_CACHE"]


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's OLLAMA_* settings (the demo cache location is kept)."""
    for key in OLLAMA_VARS:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with the demo models, created once per session through the create path."""
    from skyllama.composition import build_runtime
    from skyllama.demo import install_demo_models
    from skyllama.settings import Settings

    folder = tmp_path_factory.mktemp("demo-models")
    settings = Settings.from_env({}, models=folder, state_db=folder / ".skyllama" / "state.db")
    runtime = build_runtime(settings, inference=False)
    install_demo_models(runtime)
    runtime.close()
    return folder


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def server(models_dir: Path) -> Iterator[RunningServer]:
    """A real server on 127.0.0.1 over an empty models folder."""
    with run_server(models_dir) as running:
        yield running


@pytest.fixture
def demo_server(demo_models: Path, tmp_path: Path) -> Iterator[RunningServer]:
    """A real server on 127.0.0.1 over a private copy of the demo models."""
    folder = clone_models(demo_models, tmp_path / "demo")
    with run_server(folder) as running:
        yield running


@pytest.fixture
def fake_engine() -> FakeEngine:
    """The fake engine ``demo_fake_server`` runs on (script its replies with ``enqueue``)."""
    return FakeEngine()


@pytest.fixture
def demo_fake_server(demo_models: Path, tmp_path: Path, fake_engine: FakeEngine) -> Iterator[RunningServer]:
    """A real server over a copy of the demo models, generating with ``fake_engine``."""
    folder = clone_models(demo_models, tmp_path / "demo-fake")
    with run_server(folder, engine=fake_engine) as running:
        yield running


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the long variants (fuzzing, soak); CI runs the bounded subset")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or os.environ.get("SKYLLAMA_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="long variant: run with `pytest --runslow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
