"""Output formatting as the ``ollama`` CLI's (its ``format`` package and tablewriter settings):
decimal sizes, relative times, the PROCESSOR column and borderless tables."""

from __future__ import annotations

import io
import math
import re
from datetime import UTC, datetime
from typing import Any


def human_bytes(size: int) -> str:
    """Decimal units as ``ollama list`` shows them: ``101 MB``, ``1.5 GB``, ``512 B``."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            value = size / scale
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{size} B"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp (nanoseconds allowed) as an aware datetime; ``None`` if unreadable."""
    if not text:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def human_time(moment: datetime | None, zero: str = "Never", now: datetime | None = None) -> str:
    """``2 minutes ago``, ``4 minutes from now``, ``Forever`` (more than 20 years ahead)."""
    if moment is None:
        return zero
    delta = ((now or datetime.now(tz=UTC)) - moment).total_seconds()
    if delta < -20 * 365 * 86400:
        return "Forever"
    if delta < 0:
        return _duration(-delta) + " from now"
    return _duration(delta) + " ago"


def processor(size: int, size_vram: int) -> str:
    """``100% CPU``, ``100% GPU`` or a ``48%/52% CPU/GPU`` split, as ``ollama ps``."""
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size == 0:
        return "Unknown"
    cpu = round((size - size_vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def wrap_words(text: str, limit: int) -> list[str]:
    """tablewriter's ``WrapString``: words split at single spaces (newlines are spaces), laid out in
    lines of at most ``limit`` (or the longest word) by least raggedness, not greedily."""
    words = text.replace("\n", " ").split(" ")
    limit = max([limit, *(len(w) for w in words)])
    n = len(words)
    cost, breaks = [0] * (n + 1), [n] * n
    for i in range(n - 1, -1, -1):
        widths = [len(words[i])]
        for w in words[i + 1:]:
            widths.append(widths[-1] + 1 + len(w))
        if widths[-1] <= limit:
            continue  # the rest fits on one line: cost 0
        best = None
        for j in range(i + 1, n):
            width = widths[j - 1 - i]
            c = (limit - width) ** 2 + cost[j] + (100_000 if width > limit else 0)
            if best is None or c < best:
                best, breaks[i] = c, j
        cost[i] = best if best is not None else 0
    lines, i = [], 0
    while i < n:
        lines.append(" ".join(words[i:breaks[i]]))
        i = breaks[i]
    return lines


def table(rows: list[list[str]], header: list[str] | None = None, wrap: int | None = None) -> str:
    """A borderless, left-aligned table with four spaces between columns (ollama's tablewriter);
    with ``wrap``, cells wrap at that width as tablewriter's auto-wrap does, on lines of their own."""
    if wrap is not None:
        wrapped: list[list[str]] = []
        for row in rows:
            cells = [wrap_words(cell, wrap) for cell in row]
            wrapped += [[c[k] if k < len(c) else "" for c in cells] for k in range(max(map(len, cells), default=0))]
        rows = wrapped
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=None, show_header=header is not None, show_edge=False, pad_edge=False,
                 padding=(0, 4, 0, 0), header_style="bold")
    for name in header or [""] * max((len(r) for r in rows), default=0):
        grid.add_column(name, no_wrap=True, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))  # plain text: "[en]" is a value, not rich markup
    buffer = io.StringIO()
    Console(file=buffer, highlight=False, color_system=None, width=10_000).print(grid)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def models_table(models: list[dict[str, Any]], prefix: str = "") -> str:
    """``ollama list``'s NAME/ID/SIZE/MODIFIED table of ``/api/tags`` models whose name starts with ``prefix``."""
    rows = [[m["name"], m.get("digest", "")[:12], human_bytes(int(m.get("size") or 0)),
             human_time(parse_time(m.get("modified_at")))]
            for m in models if not prefix or m["name"].lower().startswith(prefix.lower())]
    return table(rows, ["NAME", "ID", "SIZE", "MODIFIED"])
