"""The Anthropic-compatible front (``/v1/messages``)."""
