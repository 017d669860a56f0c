"""The one error type of the template package."""

from __future__ import annotations

from skyllama.errors import BadRequest


class TemplateError(BadRequest):
    """A template that fails to parse or execute, or runs past its time or size bounds.

    The message is safe to show to a client: it names the template line and the problem, never a
    Python stack or a server path.
    """
