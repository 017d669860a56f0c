"""The OpenAPI document with one operationId per (path, method).

FastAPI gives every method of a multi-method route (``GET`` + ``HEAD``, the registry's catch-all)
the same operationId and warns about it; client generators and schemathesis want them unique.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from fastapi import FastAPI

_METHOD_SUFFIX = re.compile(r"_(get|head|post|put|patch|delete|options)$")


def per_method_ids(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite each operationId to end with its own method (pure; returns ``schema``)."""
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "operationId" in operation:
                operation["operationId"] = f"{_METHOD_SUFFIX.sub('', operation['operationId'])}_{method}"
    return schema


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Duplicate Operation ID")
                app.openapi_schema = per_method_ids(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
