"""Settings, read once from the environment: Ollama's variable names first, ``SKYLLAMA_`` for the rest.

Build them in the composition root (``Settings.from_env()``); the library never reads the
environment at import time. A bad value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import OLLAMA_COMPAT_VERSION
from .durations import parse_duration
from .errors import InvalidDuration
from .keep_alive import KeepAlive
from .names import ModelName
from .pricing import InvalidPrices, Prices

DEFAULT_PORT = 11434


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the environment variable."""


@dataclass(frozen=True)
class HostAddress:
    """Where the server listens, parsed from OLLAMA_HOST as Ollama parses it."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_host(value: str) -> HostAddress:
    """``host``, ``host:port``, ``scheme://host:port[/path]``; empty means 127.0.0.1:11434."""
    text = (value or "").strip()
    scheme, sep, hostport = text.partition("://")
    default_port = DEFAULT_PORT
    if not sep:
        scheme, hostport = "http", text
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    else:
        raise SettingsError(f"OLLAMA_HOST: unsupported scheme {scheme!r} (use http or https)")
    hostport, slash, path = hostport.partition("/")
    path = f"/{path}".rstrip("/") if slash else ""
    host, port_text = hostport, ""
    if hostport.startswith("["):  # [::1]:port
        end = hostport.find("]")
        if end < 0:
            raise SettingsError(f"OLLAMA_HOST: bad address {value!r}")
        host, rest = hostport[1:end], hostport[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SettingsError(f"OLLAMA_HOST: invalid port {port_text!r}")
        port = int(port_text)
    else:
        port = default_port
    if hostport.startswith(":"):
        host = "0.0.0.0"
    return HostAddress(scheme=scheme, host=host or "127.0.0.1", port=port, path=path)


def _default_models_dir() -> Path:
    return Path.home() / ".skyllama" / "models"


class Settings(BaseSettings):
    """Every setting of skyllama, with the environment variable that sets it."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", case_sensitive=True)

    host: str = Field("127.0.0.1:11434", validation_alias=AliasChoices("OLLAMA_HOST", "host"),
                      description="Address to listen on: host, host:port or scheme://host:port.")
    models: Path = Field(default_factory=_default_models_dir,
                         validation_alias=AliasChoices("OLLAMA_MODELS", "models"),
                         description="Model folder in Ollama's layout (default ~/.skyllama/models; "
                                     "point it at ~/.ollama/models to share Ollama's).")
    api_version: str = Field(OLLAMA_COMPAT_VERSION,
                             validation_alias=AliasChoices("SKYLLAMA_API_VERSION", "api_version"),
                             description="The Ollama version /api/version reports (clients gate features on it): "
                                         "the Ollama release whose API skyllama follows.")
    keep_alive: KeepAlive = Field(KeepAlive(300.0), validation_alias=AliasChoices("OLLAMA_KEEP_ALIVE", "keep_alive"),
                                  description="Default keep_alive: Go duration or seconds; negative = forever.")
    max_loaded_models: int = Field(0, ge=0, validation_alias=AliasChoices("OLLAMA_MAX_LOADED_MODELS",
                                                                          "max_loaded_models"),
                                   description="Models kept loaded at once (0 = 3 on CPU), LRU eviction.")
    num_parallel: int = Field(1, ge=0, le=256, validation_alias=AliasChoices("OLLAMA_NUM_PARALLEL", "num_parallel"),
                              description="Concurrent requests per loaded model (0 = 1).")
    max_queue: int = Field(512, ge=0, validation_alias=AliasChoices("OLLAMA_MAX_QUEUE", "max_queue"),
                           description="Requests allowed to wait; beyond it the answer is 503 at once.")
    preload: str = Field("", validation_alias=AliasChoices("SKYLLAMA_PRELOAD", "preload"),
                         description="Models to load at start, with their keep_alive: "
                                     "`smollm2:135m=-1,all-minilm=10m` (no `=`: the default keep_alive).")
    num_parallel_models: str = Field("", validation_alias=AliasChoices("SKYLLAMA_NUM_PARALLEL_MODELS",
                                                                       "num_parallel_models"),
                                     description="Per-model parallel requests, e.g. `smollm2:135m=4,all-minilm=2`; "
                                                 "overrides OLLAMA_NUM_PARALLEL, a num_parallel PARAMETER overrides it.")
    origins: str = Field("", validation_alias=AliasChoices("OLLAMA_ORIGINS", "origins"),
                         description="Extra allowed CORS origins, comma-separated.")
    context_length: int = Field(4096, ge=0, validation_alias=AliasChoices("OLLAMA_CONTEXT_LENGTH", "context_length"),
                                description="Default num_ctx when neither the request nor the model sets one.")
    flash_attention: bool = Field(False, validation_alias=AliasChoices("OLLAMA_FLASH_ATTENTION", "flash_attention"),
                                  description="Use flash attention in llama.cpp.")
    prompt_cache: bool = Field(True, validation_alias=AliasChoices("SKYLLAMA_PROMPT_CACHE", "prompt_cache"),
                               description="Reuse the KV cache of a prompt's longest prefix a context holds "
                                           "(a chat's history, a shared system prompt or tool list).")
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = Field(
        "f16", validation_alias=AliasChoices("OLLAMA_KV_CACHE_TYPE", "kv_cache_type"),
        description="KV cache type (f16, q8_0, q4_0).")
    backend: Literal["local", "aws"] = Field("local", validation_alias=AliasChoices("SKYLLAMA_BACKEND", "backend"),
                                             description="Storage backend: local folder + SQLite, or S3 + DynamoDB.")
    state_db: Path | None = Field(None, validation_alias=AliasChoices("SKYLLAMA_STATE_DB", "state_db"),
                                  description="SQLite state file (default <models>/.skyllama/state.db).")
    max_num_ctx: int = Field(131072, ge=256, validation_alias=AliasChoices("SKYLLAMA_MAX_NUM_CTX", "max_num_ctx"),
                             description="Largest num_ctx a request may ask for.")
    max_request_bytes: int = Field(64 << 20, ge=1024,
                                   validation_alias=AliasChoices("SKYLLAMA_MAX_REQUEST_BYTES", "max_request_bytes"),
                                   description="Largest JSON request body (blob uploads are streamed, not capped by it).")
    max_blob_bytes: int = Field(256 << 30, ge=1024,
                                validation_alias=AliasChoices("SKYLLAMA_MAX_BLOB_BYTES", "max_blob_bytes"),
                                description="Largest blob upload.")
    max_num_predict: int = Field(65536, ge=1, validation_alias=AliasChoices("SKYLLAMA_MAX_NUM_PREDICT",
                                                                            "max_num_predict"),
                                 description="Largest num_predict a request may ask for (-1 still means until "
                                             "the context is full).")
    max_messages: int = Field(4096, ge=1, validation_alias=AliasChoices("SKYLLAMA_MAX_MESSAGES", "max_messages"),
                              description="Most messages one chat request may carry.")
    max_images: int = Field(16, ge=0, validation_alias=AliasChoices("SKYLLAMA_MAX_IMAGES", "max_images"),
                            description="Most images one generate or chat request may carry.")
    max_image_bytes: int = Field(20 << 20, ge=1024, validation_alias=AliasChoices("SKYLLAMA_MAX_IMAGE_BYTES",
                                                                                 "max_image_bytes"),
                                 description="Largest decoded image.")
    # 1 MiB: the largest num_ctx (131072 tokens) at a generous 8 bytes a token. llama.cpp's
    # tokenizer slows down quadratically with the special tokens in a text (1 MB of chat turns:
    # 40 s on 2 busy cores), so a template that expands a prompt to megabytes wedged the model.
    max_prompt_bytes: int = Field(1 << 20, ge=4096, validation_alias=AliasChoices("SKYLLAMA_MAX_PROMPT_BYTES",
                                                                                  "max_prompt_bytes"),
                                  description="Largest rendered prompt, in UTF-8 bytes (400 beyond, before "
                                              "tokenizing).")
    max_concurrent_per_key: int = Field(
        32, ge=0, validation_alias=AliasChoices("SKYLLAMA_MAX_CONCURRENT_PER_KEY", "max_concurrent_per_key"),
        description="Requests one API key may have in flight at once (429 beyond; 0 = no limit).")
    header_timeout: float = Field(10.0, gt=0, validation_alias=AliasChoices("SKYLLAMA_HEADER_TIMEOUT",
                                                                            "header_timeout"),
                                  description="Seconds a connection may take to send a request's headers "
                                              "(skyllama serve closes it after that).")
    idle_timeout: float = Field(30.0, gt=0, validation_alias=AliasChoices("SKYLLAMA_IDLE_TIMEOUT", "idle_timeout"),
                                description="Seconds an idle keep-alive connection is kept open (skyllama serve).")
    body_idle_timeout: float = Field(30.0, gt=0, validation_alias=AliasChoices("SKYLLAMA_BODY_IDLE_TIMEOUT",
                                                                               "body_idle_timeout"),
                                     description="Seconds a request body may pause between two pieces before the "
                                                 "connection is closed with a 408 (blob uploads included).")
    body_timeout: float = Field(300.0, gt=0, validation_alias=AliasChoices("SKYLLAMA_BODY_TIMEOUT", "body_timeout"),
                                description="Seconds a client may take to send a whole JSON request body (blob "
                                            "uploads get only the idle timeout).")
    sweep_interval: float = Field(600.0, gt=0, validation_alias=AliasChoices("SKYLLAMA_SWEEP_INTERVAL",
                                                                             "sweep_interval"),
                                  description="Seconds between two sweeps of crash leftovers (blobs/.partial-* older "
                                              "than the body idle timeout, pull parts idle for 7 days); one also "
                                              "runs at start.")
    num_thread: int = Field(0, ge=0, validation_alias=AliasChoices("SKYLLAMA_NUM_THREAD", "num_thread"),
                            description="llama.cpp threads (0 = physical cores).")
    embed_batching: bool = Field(True, validation_alias=AliasChoices("SKYLLAMA_EMBED_BATCHING", "embed_batching"),
                                 description="Coalesce concurrent /api/embed requests for one model into shared "
                                             "engine calls.")
    gen_batching: bool = Field(True, validation_alias=AliasChoices("SKYLLAMA_GEN_BATCHING", "gen_batching"),
                               description="Decode concurrent generate/chat requests for one model (up to its "
                                           "num_parallel) in shared llama.cpp batches.")
    batch_wait_ms: float = Field(2.0, ge=0, le=1000, validation_alias=AliasChoices("SKYLLAMA_BATCH_WAIT_MS",
                                                                                    "batch_wait_ms"),
                                 description="Milliseconds a new embed batch waits for more requests to join.")
    batch_max_inputs: int = Field(2048, ge=1, validation_alias=AliasChoices("SKYLLAMA_BATCH_MAX_INPUTS",
                                                                            "batch_max_inputs"),
                                  description="Most inputs one coalesced embed batch may hold.")
    load_timeout: float = Field(300.0, gt=0, validation_alias=AliasChoices("OLLAMA_LOAD_TIMEOUT", "load_timeout"),
                                description="How long a model's runner process may take to start and load the "
                                            "model (a Go duration or seconds) before it counts as hung and is killed.")
    runner_prompt_timeout: float = Field(
        600.0, gt=0, validation_alias=AliasChoices("SKYLLAMA_RUNNER_PROMPT_TIMEOUT", "runner_prompt_timeout"),
        description="Seconds a runner may spend on prompt evaluation (to the first token, or an embed call) "
                    "before it is killed as hung; its requests end with an error and it restarts on the next.")
    runner_token_timeout: float = Field(
        60.0, gt=0, validation_alias=AliasChoices("SKYLLAMA_RUNNER_TOKEN_TIMEOUT", "runner_token_timeout"),
        description="Seconds a runner may take between two generated tokens before it is killed as hung.")
    runner_spares: int = Field(1, ge=0, le=8, validation_alias=AliasChoices("SKYLLAMA_RUNNER_SPARES", "runner_spares"),
                               description="Runner processes kept started (llama.cpp imported) ahead of the next "
                                           "model load.")
    auth: Literal["auto", "on", "off"] = Field(
        "auto", validation_alias=AliasChoices("SKYLLAMA_AUTH", "auth"),
        description="API keys (Authorization: Bearer): auto = on unless listening on loopback with the "
                    "local backend (always on with backend=aws); on; off.")
    auth_cache_seconds: float = Field(5.0, ge=0, le=300,
                                      validation_alias=AliasChoices("SKYLLAMA_AUTH_CACHE_SECONDS", "auth_cache_seconds"),
                                      description="How long a verified API key is cached in-process; a revoked key "
                                                  "stops working within this many seconds.")
    registry_public_read: bool = Field(False, validation_alias=AliasChoices("SKYLLAMA_REGISTRY_PUBLIC_READ",
                                                                            "registry_public_read"),
                                       description="With auth on, let /v2/ registry reads (GET/HEAD) through "
                                                   "without a key; writes always need the manage scope.")
    registry_allowlist: str = Field(
        "registry.ollama.ai,ollama.com,*.ollama.com,hf.co,*.hf.co,huggingface.co,*.huggingface.co,"
        "cdn-lfs.hf.co,*.cloudflarestorage.com,*.r2.cloudflarestorage.com",
        validation_alias=AliasChoices("SKYLLAMA_REGISTRY_ALLOWLIST", "registry_allowlist"),
        description="Hosts pull/push may contact (registry, token realm, redirect targets), comma-separated: "
                    "exact names or *.suffix. Private addresses need an exact entry.")
    registry_allow_loopback: bool = Field(False, validation_alias=AliasChoices("SKYLLAMA_REGISTRY_ALLOW_LOOPBACK",
                                                                               "registry_allow_loopback"),
                                          description="Let pull/push contact loopback addresses (127.0.0.1, ::1, "
                                                      "localhost), e.g. another skyllama on this machine.")
    registry_serve_host: str = Field("registry.ollama.ai",
                                     validation_alias=AliasChoices("SKYLLAMA_REGISTRY_SERVE_HOST", "registry_serve_host"),
                                     description="Host part of the local names the /v2/ registry serves and stores: "
                                                 "/v2/ns/model/manifests/tag is the local model <host>/ns/model:tag.")
    registry_upload_ttl: float = Field(3600.0, gt=0, validation_alias=AliasChoices("SKYLLAMA_REGISTRY_UPLOAD_TTL",
                                                                                   "registry_upload_ttl"),
                                       description="Seconds an idle /v2/ blob upload session is kept before it "
                                                   "is discarded.")
    pull_parts: int = Field(4, ge=1, le=16, validation_alias=AliasChoices("SKYLLAMA_PULL_PARTS", "pull_parts"),
                            description="Parallel ranged parts per blob download.")
    pull_min_part_bytes: int = Field(8 << 20, ge=1, validation_alias=AliasChoices("SKYLLAMA_PULL_MIN_PART_BYTES",
                                                                                  "pull_min_part_bytes"),
                                     description="Smallest download part; smaller blobs come in one part.")
    bucket: str = Field("", validation_alias=AliasChoices("SKYLLAMA_BUCKET", "bucket"),
                        description="backend=aws: the S3 bucket of blobs/ and manifests/ (Ollama's layout).")
    prefix: str = Field("", validation_alias=AliasChoices("SKYLLAMA_PREFIX", "prefix"),
                        description="backend=aws: key prefix in the bucket (empty, or ending in /).")
    table: str = Field("", validation_alias=AliasChoices("SKYLLAMA_TABLE", "table"),
                       description="backend=aws: the DynamoDB state table (pk/sk; also holds idempotency records).")
    queue_url: str = Field("", validation_alias=AliasChoices("SKYLLAMA_QUEUE_URL", "queue_url"),
                           description="backend=aws: the SQS queue of create/pull/push jobs.")
    cache_dir: Path | None = Field(None, validation_alias=AliasChoices("SKYLLAMA_CACHE_DIR", "cache_dir"),
                                   description="backend=aws: local cache of blobs fetched from S3, verified by "
                                               "digest (default <tmp>/skyllama/blobs, /tmp in Lambda).")
    aws_endpoint_url: str = Field("", validation_alias=AliasChoices("SKYLLAMA_AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL",
                                                                    "aws_endpoint_url"),
                                  description="backend=aws: S3/DynamoDB/SQS endpoint (e.g. moto's server mode).")
    presign_threshold: int = Field(5 << 20, ge=0,
                                   validation_alias=AliasChoices("SKYLLAMA_PRESIGN_THRESHOLD", "presign_threshold"),
                                   description="backend=aws: a plain blob upload larger than this is refused "
                                               "with 413 (Lambda takes 6 MB); clients upload by presigned S3 "
                                               "URLs instead (?presign=1, what skyllama create does).")
    job_follow_seconds: float = Field(25.0, ge=0, validation_alias=AliasChoices("SKYLLAMA_JOB_FOLLOW_SECONDS",
                                                                                  "job_follow_seconds"),
                                      description="backend=aws: how long a create/pull request follows its "
                                                  "worker job before answering 'send it again to follow'.")
    job_reserve_seconds: float = Field(60.0, ge=0, validation_alias=AliasChoices("SKYLLAMA_JOB_RESERVE_SECONDS",
                                                                                   "job_reserve_seconds"),
                                       description="backend=aws: a worker pull/push stops this many seconds "
                                                   "before the Lambda deadline, saves its progress and queues "
                                                   "its continuation.")
    inference_function: str = Field("", validation_alias=AliasChoices("SKYLLAMA_INFERENCE_FUNCTION",
                                                                      "inference_function"),
                                    description="backend=aws: the inference function the warmer invokes.")
    fleet: Literal["auto", "on", "off"] = Field(
        "auto", validation_alias=AliasChoices("SKYLLAMA_FLEET", "fleet"),
        description="Instance records of loaded models in the state store, and /api/ps across every "
                    "instance from them: auto = on with backend=aws.")
    inference_alias: str = Field("", validation_alias=AliasChoices("SKYLLAMA_INFERENCE_ALIAS", "inference_alias"),
                                 description="backend=aws: the inference function's alias the warmer invokes and "
                                             "gives provisioned concurrency (empty: unqualified, none).")
    gpu_cluster: str = Field("", validation_alias=AliasChoices("SKYLLAMA_GPU_CLUSTER", "gpu_cluster"),
                             description="backend=aws: ECS cluster of the GPU service the warmer scales.")
    gpu_service: str = Field("", validation_alias=AliasChoices("SKYLLAMA_GPU_SERVICE", "gpu_service"),
                             description="backend=aws: ECS service whose desired count the warmer sets.")
    warm_provision_after: float = Field(
        3600.0, validation_alias=AliasChoices("SKYLLAMA_WARM_PROVISION_AFTER", "warm_provision_after"),
        description="A keep_alive longer than this (or negative) gets provisioned concurrency / a GPU "
                    "desired count; shorter ones only warm-up invocations. Go duration or seconds.")
    warm_max_per_model: int = Field(2, ge=0, validation_alias=AliasChoices("SKYLLAMA_WARM_MAX_PER_MODEL",
                                                                           "warm_max_per_model"),
                                    description="Cost guard: warm instances kept per model at most.")
    warm_max_total: int = Field(4, ge=0, validation_alias=AliasChoices("SKYLLAMA_WARM_MAX_TOTAL", "warm_max_total"),
                                description="Cost guard: warm instances (warm-ups, provisioned concurrency, "
                                            "GPU tasks) in total at most.")
    emf_metrics: Literal["auto", "on", "off"] = Field(
        "auto", validation_alias=AliasChoices("SKYLLAMA_EMF_METRICS", "emf_metrics"),
        description="Print per-request CloudWatch EMF metrics to stdout: auto = only with backend=aws.")
    prices: str = Field("", validation_alias=AliasChoices("SKYLLAMA_PRICES", "prices"),
                        description="Prices of the usage cost estimates (console, skyllama usage): any of "
                                    "request=,gb_second=,memory_gb=,million_tokens= in US dollars; "
                                    "empty = the README's AWS prices (skyllama/pricing.py).")

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _keep_alive(cls, value: Any) -> KeepAlive:
        if isinstance(value, KeepAlive):
            return value
        try:
            return KeepAlive.parse(value)
        except InvalidDuration as e:
            raise ValueError(str(e)) from e

    @field_validator("warm_provision_after", "load_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        try:
            return parse_duration(value)
        except InvalidDuration as e:
            raise ValueError(str(e)) from e

    @field_validator("prices")
    @classmethod
    def _prices(cls, value: str) -> str:
        try:
            Prices.parse(value)
        except InvalidPrices as e:
            raise ValueError(str(e)) from e
        return value

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?", value):
            raise ValueError("must be an Ollama version such as 0.32.15")  # clients compare it as semver
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            parse_host(value)
        except SettingsError as e:
            raise ValueError(str(e).removeprefix("OLLAMA_HOST: ")) from e
        return value

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``); errors name the variable."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            choices = alias.choices if isinstance(alias, AliasChoices) else []
            for choice in choices:
                if isinstance(choice, str) and choice.isupper() and env.get(choice, "") != "":
                    values[name] = env[choice]
                    break
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise SettingsError(_describe_errors(e)) from None

    @property
    def address(self) -> HostAddress:
        return parse_host(self.host)

    @property
    def effective_max_loaded_models(self) -> int:
        return self.max_loaded_models or 3

    @property
    def effective_num_parallel(self) -> int:
        return self.num_parallel or 1

    def num_parallel_for(self, name: str) -> int | None:
        """``SKYLLAMA_NUM_PARALLEL_MODELS``'s value for the model ``name`` (``None``: not listed)."""
        for entry, value in parse_model_map(self.num_parallel_models).items():
            if ModelName.parse(entry).display() == name and value.isdigit() and int(value) > 0:
                return int(value)
        return None

    @property
    def state_path(self) -> Path:
        return self.state_db or (self.models / ".skyllama" / "state.db")

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need an API key (SKYLLAMA_AUTH, with ``auto`` resolved)."""
        if self.auth != "auto":
            return self.auth == "on"
        return self.backend == "aws" or not self.address.is_loopback

    @property
    def price_list(self) -> Prices:
        """``SKYLLAMA_PRICES`` over the README's prices."""
        return Prices.parse(self.prices)

    @property
    def emf_enabled(self) -> bool:
        return self.emf_metrics == "on" or (self.emf_metrics == "auto" and self.backend == "aws")

    @property
    def fleet_enabled(self) -> bool:
        return self.fleet == "on" or (self.fleet == "auto" and self.backend == "aws")

    @property
    def keep_alive_forever(self) -> bool:
        return self.keep_alive.is_forever

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """``(variable, default, description)`` rows for ``--help`` and the README."""
        rows = []
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            var = next((c for c in alias.choices if isinstance(c, str) and c.isupper()), name) \
                if isinstance(alias, AliasChoices) else name
            default = "" if field.default_factory else str(field.default)
            rows.append((var, default, field.description or ""))
        return rows


def _describe_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field_name = str(item["loc"][0]) if item["loc"] else "?"
        field = Settings.model_fields.get(field_name)
        alias = field.validation_alias if field else None
        var = next((c for c in alias.choices if isinstance(c, str) and c.isupper()), field_name) \
            if isinstance(alias, AliasChoices) else field_name
        msg = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{var}: {msg} (got {item.get('input')!r})")
    return "invalid configuration: " + "; ".join(lines)


def parse_model_map(text: str) -> dict[str, str]:
    """``"a:1b=-1, b=10m, c"`` -> ``{"a:1b": "-1", "b": "10m", "c": ""}`` (model lists in settings)."""
    out = {}
    for item in text.split(","):
        name, _, value = item.strip().partition("=")
        if name.strip():
            out[name.strip()] = value.strip()
    return out
