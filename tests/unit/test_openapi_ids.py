"""Every (path, method) of the OpenAPI document has its own operationId, without FastAPI's warning."""

from __future__ import annotations

import warnings
from pathlib import Path

from skyllama.composition import build_runtime
from skyllama.engine.fake import FakeEngine
from skyllama.http.app import create_app
from skyllama.settings import Settings


def test_operation_ids_are_unique_per_method(tmp_path: Path) -> None:
    runtime = build_runtime(Settings(models=tmp_path), engine=FakeEngine())
    app = create_app(runtime)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a duplicate id would warn, and fail here
        schema = app.openapi()
    runtime.close()
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) > 20
    version = schema["paths"]["/api/version"]
    assert version["get"]["operationId"].endswith("_get") and version["head"]["operationId"].endswith("_head")
