"""``skyllama show MODEL`` and the interactive ``/show info``: an ``/api/show`` answer laid out as
Ollama's ``showInfo`` (cmd/cmd.go) lays it out: the Model, Capabilities, Projector, Parameters,
Metadata and Tensors (``--verbose``), System and License sections, each a borderless table under a
two-space title, values printed as Go prints them (``[en]``, ``<nil>``, ``1.34515008e+08``)."""

from __future__ import annotations

from typing import Any

from .formatting import table
from .gofmt import go_float, go_value


def human_number(n: int) -> str:
    """Ollama's ``format.HumanNumber``: ``135M``, ``134.52M``, ``7B``, ``8.0B``... as it rounds."""
    for scale, unit, decimals in ((10**9, "B", 1), (10**6, "M", 2), (10**3, "K", 0)):
        if n >= scale:
            value = n / scale
            if unit == "K" or value == int(value):
                return f"{value:.0f}{unit}"
            return f"{value:.{decimals}f}{unit}"
    return str(n)


def _number(value: Any) -> str | None:
    """``strconv.FormatFloat(f, 'f', -1, 64)`` of a JSON number; ``None`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def short_value(value: Any) -> str:
    """A Metadata value: an array cut to about 10 characters (``[a b ...+3 more]``), as showInfo cuts it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return go_float(float(value))
    if isinstance(value, list):
        shown, width = 0, 1
        for i, item in enumerate(value):
            item_width = len(go_value(item)) + (2 if i > 0 else 0)
            if width + item_width > 10 and i > 0:
                break
            width += item_width
            shown += 1
        if shown < len(value):
            return go_value(value[:shown])[:-1] + f" ...+{len(value) - shown} more]"
        return go_value(value)
    if value is None:
        return "<nil>"
    return "map[string]interface {}" if isinstance(value, dict) else str(value)  # Go's %T


def _shape(shape: Any) -> str:
    """``fmt.Sprint`` of a tensor's ``[]uint64`` shape: ``[576 49152]``."""
    return "[" + " ".join(str(int(n)) for n in shape or []) + "]"


def _head(text: str, n: int) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [["", line] for line in lines[:n]] + ([["", "..."]] if len(lines) > n else [])


def _model_rows(info: dict[str, Any]) -> list[list[str]]:
    details, model_info = info.get("details") or {}, info.get("model_info")
    rows: list[list[str]] = []
    if info.get("remote_host"):
        rows += [["", "Remote model", str(info.get("remote_model") or "")], ["", "Remote URL", info["remote_host"]]]
    if model_info is not None:
        arch = model_info.get("general.architecture")
        arch = arch if isinstance(arch, str) else ""
        if arch:
            rows.append(["", "architecture", arch])
        params = str(details.get("parameter_size") or "")
        count = model_info.get("general.parameter_count")
        if not params and isinstance(count, int | float) and not isinstance(count, bool):
            params = human_number(int(count))
        if params:
            rows.append(["", "parameters", params])
        for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
            if (text := _number(model_info.get(f"{arch}.{key}"))) is not None:
                rows.append(["", label, text])
    else:
        rows += [["", "architecture", str(details.get("family") or "")],
                 ["", "parameters", str(details.get("parameter_size") or "")]]
    rows.append(["", "quantization", str(details.get("quantization_level") or "")])
    if info.get("requires"):
        rows.append(["", "requires", str(info["requires"])])
    return rows


def _projector_rows(projector: dict[str, Any]) -> list[list[str]]:
    arch = projector.get("general.architecture")
    arch = arch if isinstance(arch, str) else ""
    rows = [["", "architecture", arch]] if arch else []
    count = projector.get("general.parameter_count")
    if isinstance(count, int | float) and not isinstance(count, bool):
        rows.append(["", "parameters", human_number(int(count))])
    for suffix, label in (("embedding_length", "embedding length"), ("projection_dim", "dimensions")):
        for modality in ("vision", "audio"):
            if (text := _number(projector.get(f"{arch}.{modality}.{suffix}"))) is not None:
                rows.append(["", label, text])
                break
    return rows


def show_info(info: dict[str, Any], verbose: bool = False) -> str:
    """The text ``ollama show MODEL`` prints for ``info`` (an ``/api/show`` answer)."""
    sections: list[tuple[str, list[list[str]]]] = [("Model", _model_rows(info))]
    if info.get("capabilities"):
        sections.append(("Capabilities", [["", str(c)] for c in info["capabilities"]]))
    if info.get("projector_info") is not None:
        sections.append(("Projector", _projector_rows(info["projector_info"])))
    if info.get("parameters"):
        sections.append(("Parameters", [["", *line.split()] for line in info["parameters"].splitlines() if line]))
    model_info = info.get("model_info")
    if model_info is not None and verbose:
        sections.append(("Metadata", [["", k, short_value(model_info[k])] for k in sorted(model_info)]))
    if info.get("tensors") and verbose:
        sections.append(("Tensors", [["", str(t.get("name")), str(t.get("type")), _shape(t.get("shape"))]
                                     for t in info["tensors"]]))
    if info.get("system"):
        sections.append(("System", _head(info["system"], 2)))
    if info.get("license"):
        sections.append(("License", _head(info["license"], 2)))
    out = []
    for title, rows in sections:
        # tablewriter draws nothing for no rows, and wraps cells at 30 (100 for System and License)
        body = table(rows, wrap=100 if title in ("System", "License") else 30)
        out.append(f"  {title}\n" + (body + "\n" if body else "") + "\n")
    return "".join(out)
