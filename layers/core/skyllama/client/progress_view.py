"""Progress on stderr as Ollama's ``progress`` package draws it for ``pull`` and ``push``: one line
per state, in the order the states came: a status line (with a spinner while it is the current
step) and a bar per blob, ``pulling 4f659a1e86d7: 100% ▕██████████▏ 101 MB``. When the view stops,
every line is drawn once more as it ended (spinners gone, finished bars at 100% without rate or
time left) and the cursor is left on a fresh line, so the output reads the same on a terminal and
in a log: ``pulling manifest``, the bars, ``verifying sha256 digest``, ``writing manifest``,
``success``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from .formatting import human_bytes

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
BarLabel = Callable[[str, str], str]  # (the event's status, the digest's first 12 hex digits) -> the bar's text


def _remaining(seconds: float) -> str:
    """progress.formatDuration: two units at most (``59m59s``, ``2h3m``, ``99h+``)."""
    s = int(round(seconds))
    if s >= 100 * 3600:
        return "99h+"
    if s >= 3600:
        return f"{s // 3600}h{s // 60 % 60}m"
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


class Status:
    def __init__(self, message: str) -> None:
        self.message = message.strip()
        self.active = True
        self.started = time.monotonic()

    def line(self, _width: int) -> str:
        if not self.active:
            return self.message
        frame = SPINNER[int((time.monotonic() - self.started) * 10) % len(SPINNER)]
        return f"{self.message} {frame}"


class Bar:
    def __init__(self, message: str, total: int, completed: int) -> None:
        self.message, self.total = message.strip(), total
        self.initial = self.current = completed
        self.started = time.monotonic()
        self.stopped: float | None = self.started if completed >= total else None

    def set(self, value: int) -> None:
        self.current = min(value, self.total)
        if self.current >= self.total and self.stopped is None:
            self.stopped = time.monotonic()

    def percent(self) -> float:
        return self.current / self.total * 100 if self.total > 0 else 0.0

    def line(self, width: int) -> str:
        pre = f"{self.message} {self.percent():3.0f}%"
        if self.stopped is None:
            suffix = f"{human_bytes(self.current):>6}/{human_bytes(self.total):>6}"
            elapsed = time.monotonic() - self.started
            rate = (self.current - self.initial) / elapsed if elapsed > 0 else 0.0
            if rate > 0:
                suffix += f"  {human_bytes(int(rate)):>6}/s  {_remaining((self.total - self.current) / rate):>6}"
        else:
            suffix = f"{human_bytes(self.total):>6}"
        room = max(0, width - len(pre) - 31 - 5)  # the suffix at its widest: 13 + 10 + 8; 5 for " ▕" and "▏ "
        filled = int(room * self.percent() / 100)
        return f"{pre} ▕{'█' * filled}{' ' * (room - filled)}▏ {suffix}"


class ProgressView:
    """The states of one transfer, redrawn in place on a terminal; drawn once at the end elsewhere."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.states: list[Status | Bar] = []
        self._bars: dict[str, Bar] = {}
        self._status: Status | None = None
        self._live = Live(console=self.console, get_renderable=self._render, refresh_per_second=10,
                          transient=False, redirect_stdout=False, redirect_stderr=False)

    def _render(self) -> Text:
        width = self.console.width
        return Text("\n".join(state.line(width) for state in self.states), no_wrap=True, overflow="crop")

    def __enter__(self) -> ProgressView:
        self._live.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._status is not None:
            self._status.active = False
        if self._live.is_started:
            self._live.stop()  # draws the lines once more; ends them with a newline only on a terminal
            if self.states and not self.console.is_terminal:
                self.console.file.write("\n")
                self.console.file.flush()

    def update(self, event: dict[str, Any], bar_label: BarLabel) -> None:
        """One progress event: a bar per ``digest`` (Ollama shows none until bytes move), else a status."""
        status, digest = str(event.get("status") or ""), event.get("digest")
        if digest:
            completed, total = int(event.get("completed") or 0), int(event.get("total") or 0)
            if completed == 0 and digest not in self._bars:
                return
            if self._status is not None:
                self._status.active = False
            bar = self._bars.get(digest)
            if bar is None:
                short = str(digest).removeprefix("sha256:").strip()[:12]
                bar = self._bars[digest] = Bar(bar_label(status, short), total, completed)
                self.states.append(bar)
            bar.set(completed)
        elif status and (self._status is None or self._status.message != status.strip()):
            if self._status is not None:
                self._status.active = False
            self._status = Status(status)
            self.states.append(self._status)


def pull_label(_status: str, short: str) -> str:
    return f"pulling {short}:"


def push_label(status: str, short: str) -> str:
    return status or f"pushing {short}..."


def show_progress(events: Iterable[dict[str, Any]], bar_label: BarLabel = pull_label,
                  console: Console | None = None) -> str | None:
    """Draw ``events`` until ``success``: ``None`` then, else the error text (or a note that it ended early)."""
    with ProgressView(console) as view:
        for event in events:
            if "error" in event:
                return str(event["error"])
            view.update(event, bar_label)
            if event.get("status") == "success":
                return None
    return "the server ended the stream before success"
