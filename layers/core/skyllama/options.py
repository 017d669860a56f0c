"""Model options (``options`` in requests, ``PARAMETER`` in Modelfiles) with Ollama's types.

One table lists every option, its type and its default; requests are checked against it (a value
of the wrong type is a 400, an unknown key is ignored with a warning, as Ollama does), and
Modelfile parameters, which arrive as text, are converted with it (an unknown one is a 400).
Precedence when running a model: request options over the model's PARAMETERs over defaults.
Numeric values are also checked against their stated ranges (:mod:`skyllama.option_bounds`):
request options, stored PARAMETERs merged under them, and parameters ``/api/create`` stores.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from .errors import InvalidOption
from .option_bounds import OptionLimits, check_bounds

log = logging.getLogger(__name__)

# name -> (type, default). Types: int, float, bool, list (of strings).
OPTIONS: dict[str, tuple[type, Any]] = {
    # runner (load-time) options
    "num_ctx": (int, None),  # None: OLLAMA_CONTEXT_LENGTH, capped by the model's training context
    "num_batch": (int, 512),
    "num_gpu": (int, -1),
    "main_gpu": (int, 0),
    "use_mmap": (bool, True),
    "use_mlock": (bool, False),
    "num_thread": (int, 0),
    "low_vram": (bool, False),
    "f16_kv": (bool, True),
    "logits_all": (bool, False),
    "vocab_only": (bool, False),
    "numa": (bool, False),
    # sampling (per-request) options
    "num_keep": (int, 4),
    "seed": (int, -1),
    "num_predict": (int, -1),
    "top_k": (int, 40),
    "top_p": (float, 0.9),
    "min_p": (float, 0.0),
    "typical_p": (float, 1.0),
    "repeat_last_n": (int, 64),
    "temperature": (float, 0.8),
    "repeat_penalty": (float, 1.1),
    "presence_penalty": (float, 0.0),
    "frequency_penalty": (float, 0.0),
    "mirostat": (int, 0),
    "mirostat_tau": (float, 5.0),
    "mirostat_eta": (float, 0.1),
    "penalize_newline": (bool, True),
    "tfs_z": (float, 1.0),
    "stop": (list, []),
    # skyllama's own: requests that share a model run up to this many at once (else OLLAMA_NUM_PARALLEL)
    "num_parallel": (int, 0),
}

# Options that change how a model is loaded: a request that differs in these reloads the runner.
LOAD_OPTIONS = frozenset({"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "use_mlock",
                          "num_thread", "low_vram", "f16_kv", "logits_all", "vocab_only", "numa"})

# Accepted for compatibility and documented as having no effect in skyllama's engine.
NO_EFFECT = frozenset({"low_vram", "f16_kv", "logits_all", "vocab_only", "numa", "penalize_newline"})

MAX_STOP = 16
MAX_STOP_LEN = 256

# Ollama's Options.FromMap names the Go types: `option "top_k" must be of type integer`
_TYPE_NAMES = {int: "integer", float: "float32", bool: "boolean", list: "array"}
# and FormatParams (Modelfile PARAMETER text) Go's strconv names: `invalid float value`
_TEXT_NAMES = {int: "int", float: "float", bool: "bool"}


def coerce_option(key: str, value: Any, *, strict: bool = False) -> Any:
    """Check one JSON option value against its type, as Ollama's ``Options.FromMap`` does; only a
    ``strict`` check (a request's options, as Ollama's) refuses a lone string where a list goes,
    which a model's stored parameters and ``/api/create``'s may hold."""
    kind = OPTIONS[key][0]
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and _finite(value):
            return float(value)
    elif kind is list:
        if isinstance(value, str) and not strict:
            value = [value]
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise InvalidOption(f'option "{key}" must be of an array of strings')
        if isinstance(value, list):
            if len(value) > MAX_STOP or any(len(v) > MAX_STOP_LEN for v in value):
                raise InvalidOption(f"option {key!r}: at most {MAX_STOP} stop sequences of {MAX_STOP_LEN} characters")
            return list(value)
    raise InvalidOption(f'option "{key}" must be of type {_TYPE_NAMES[kind]}')


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too big for a float (JSON allows 1 followed by 400 zeros)
        return False


def parse_request_options(raw: Any, limits: OptionLimits | None = None) -> dict[str, Any]:
    """Validate a request's ``options`` object; unknown keys are logged and dropped.

    With ``limits``, numeric values are also checked against their bounds (400 outside)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidOption("options must be an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in OPTIONS:
            log.warning("invalid option provided: %s", key)
            continue
        coerced = coerce_option(key, value, strict=True)
        if coerced is not None:
            out[key] = coerced
    if limits is not None:
        check_bounds(out, limits)
    return out


STORED_HINT = " (a value stored in the model: override it in the request's options, or recreate the model)"


def effective_options(stored: dict[str, Any], request: dict[str, Any], limits: OptionLimits) -> dict[str, Any]:
    """Defaults, then the model's stored PARAMETERs, then the (already checked) request options.

    Stored values are checked again, type and bound, because a model written by an older release
    (or by hand) may hold anything. A bad one the request does not override is a 400, never a
    value handed to the engine.
    """
    merged = {k: default for k, (_kind, default) in OPTIONS.items() if default is not None}
    kept: dict[str, Any] = {}
    for key, value in stored.items():
        if key not in OPTIONS or key in request:
            continue
        try:
            coerced = coerce_option(key, value)
        except InvalidOption as e:
            raise InvalidOption(e.message + STORED_HINT) from None
        if coerced is not None:
            kept[key] = coerced
    check_bounds(kept, limits, source="model parameter", hint=STORED_HINT)
    merged.update(kept)
    merged.update(request)
    return merged


def parse_parameter_text(key: str, text: str) -> Any:
    """Convert one Modelfile ``PARAMETER key value`` into its typed value."""
    if key not in OPTIONS:
        raise InvalidOption(f"unknown parameter '{key}'")
    kind = OPTIONS[key][0]
    value = text.strip()
    try:
        if kind is int:
            return int(value)
        if kind is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        if kind is bool:
            lowered = value.lower()
            if lowered in ("true", "1", "t"):
                return True
            if lowered in ("false", "0", "f"):
                return False
            raise ValueError
    except ValueError:
        raise InvalidOption(f"invalid {_TEXT_NAMES[kind]} value {value!r} for parameter '{key}'") from None
    return [value]


def merge_parameters(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Collect typed parameters; repeated ``stop`` lines accumulate as Ollama does."""
    params: dict[str, Any] = {}
    for key, value in items:
        if OPTIONS[key][0] is list:
            params.setdefault(key, [])
            params[key].extend(v for v in value if v not in params[key])
        else:
            params[key] = value
    return params


def validate_parameters(raw: Any, limits: OptionLimits | None = None) -> dict[str, Any]:
    """``/api/create``'s ``parameters`` object: typed, unknown names are a 400; with ``limits``,
    a value outside its bound is a 400 too, so a model never stores what would fail at run time."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidOption("parameters must be an object")
    items: list[tuple[str, Any]] = []
    for key, value in raw.items():
        if key not in OPTIONS:
            raise InvalidOption(f"unknown parameter '{key}'")
        coerced = parse_parameter_text(key, value) if isinstance(value, str) and OPTIONS[key][0] is not list \
            else coerce_option(key, value)
        if coerced is not None:
            items.append((key, coerced))
    params = merge_parameters(items)
    if limits is not None:
        check_bounds(params, limits, source="parameter")
    return params


def validate_stored_parameters(params: dict[str, Any], limits: OptionLimits) -> dict[str, Any]:
    """The parameters a create will store, its base model's included: known ones typed and within
    bounds (400 otherwise); names this release does not know (a newer Ollama's) are kept as they are,
    since nothing reads them."""
    checked = validate_parameters({k: v for k, v in params.items() if k in OPTIONS}, limits)
    return {k: checked.get(k, v) for k, v in params.items() if k in checked or k not in OPTIONS}


def format_parameters(params: dict[str, Any]) -> str:
    """``/api/show``'s ``parameters`` text: one ``name value`` line per value, names padded to 30."""
    lines = []
    for key in sorted(params):
        values = params[key] if isinstance(params[key], list) else [params[key]]
        for value in values:
            text = _quote(value) if isinstance(value, str) else _plain(value)
            lines.append(f"{key:<30} {text}")
    return "\n".join(lines)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)
