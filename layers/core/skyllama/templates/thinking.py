"""Ollama's ``thinking.Parser``: split a streamed reply into ``thinking`` and ``content``.

The tags come from the model template (``describe_template(...)["thinking_tags"]``). Leading
whitespace before the opening tag is skipped; any other text first means the model did not think
and everything is content. After the closing tag, leading whitespace of the content is dropped.
Text that could be the start of a tag is held back until it is decided.
"""

from __future__ import annotations


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkingParser:
    """Feed text pieces; get ``(thinking, content)`` pieces back."""

    def __init__(self, opening: str = "<think>", closing: str = "</think>") -> None:
        self.opening = opening
        self.closing = closing
        self.state = "looking"  # looking -> thinking -> after -> content
        self.buf = ""

    def feed(self, text: str) -> tuple[str, str]:
        """Add ``text``; return the thinking and content decided so far."""
        self.buf += text
        thinking = content = ""
        while True:
            if self.state == "looking":
                stripped = self.buf.lstrip()
                if stripped.startswith(self.opening):
                    self.buf = stripped[len(self.opening):]
                    self.state = "thinking"
                    continue
                if stripped and not self.opening.startswith(stripped):
                    self.state = "content"
                    continue
                return thinking, content
            if self.state == "thinking":
                at = self.buf.find(self.closing)
                if at >= 0:
                    thinking += self.buf[:at]
                    self.buf = self.buf[at + len(self.closing):]
                    self.state = "after"
                    continue
                keep = _partial_suffix(self.buf, self.closing)
                cut = len(self.buf) - keep
                thinking += self.buf[:cut]
                self.buf = self.buf[cut:]
                return thinking, content
            if self.state == "after":
                self.buf = self.buf.lstrip()
                if not self.buf:
                    return thinking, content
                self.state = "content"
                continue
            content += self.buf
            self.buf = ""
            return thinking, content

    def finish(self) -> tuple[str, str]:
        """The text held back at the end (an unfinished tag is given back as it was)."""
        rest, self.buf = self.buf, ""
        if self.state == "thinking":
            return rest, ""
        return "", rest if self.state in ("content", "looking") else ""
