"""Ollama's wire types for the management routes, as pydantic models.

Unknown fields are ignored, as Go's JSON decoder ignores them. Deprecated aliases (``name`` for
``model``) are accepted where Ollama accepts them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..errors import BadRequest
from .wire_base import WireBase


class WireModel(WireBase):  # unknown fields ignored; lone surrogates refused (T-36)
    pass


class NamedRequest(WireModel):
    model: str | None = Field(None, description="Model name, e.g. `llama3.2:1b`.")
    name: str | None = Field(None, description="Deprecated alias of `model`.")

    def model_name(self) -> str:
        value = self.model or self.name
        if not value:
            raise BadRequest("model is required")
        return value


class ShowRequest(NamedRequest):
    verbose: bool = False
    system: str | None = None
    template: str | None = None
    options: dict[str, Any] | None = None


class DeleteRequest(NamedRequest):
    pass


class CopyRequest(WireModel):
    source: str
    destination: str


class CreateRequest(NamedRequest):
    """``/api/create``: JSON form (``from``/``files``) or Modelfile form (``modelfile``)."""

    from_: str | None = Field(None, alias="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    quantize: str | None = None
    quantization: str | None = None
    modelfile: str | None = None
    path: str | None = None
    stream: bool | None = None

    def as_request(self) -> dict[str, Any]:
        data = self.model_dump(exclude_none=True, by_alias=True)
        data.pop("stream", None)
        return data


class VersionResponse(WireModel):
    version: str


class ModelDetails(WireModel):
    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ListModel(WireModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class ListResponse(WireModel):
    models: list[ListModel]


class StatusEvent(WireModel):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None
