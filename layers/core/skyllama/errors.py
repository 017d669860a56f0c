"""The error types of skyllama, each carrying the HTTP status it maps to.

HTTP maps these in exactly one place (``skyllama.http.errors``): services raise, handlers never
build error responses themselves. Messages are safe to show to a client: they never contain
server paths, bucket names or stack traces.
"""

from __future__ import annotations


class SkyllamaError(Exception):
    """Base error; ``status`` is the HTTP status code the API answers with."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequest(SkyllamaError):
    status = 400


class InvalidName(BadRequest):
    """A model name that does not follow Ollama's grammar."""


class InvalidDigest(BadRequest):
    """A digest that is not ``sha256:`` or ``sha256-`` followed by 64 lower-case hex digits."""


class InvalidDuration(BadRequest):
    """A keep_alive or other duration that is neither a number nor a Go duration string."""


class InvalidOption(BadRequest):
    """A request option of the wrong type or out of its allowed range."""


class InvalidModelFile(BadRequest):
    """A GGUF or safetensors file that fails validation before any native code sees it."""


class DigestMismatch(BadRequest):
    """Uploaded bytes whose sha256 differs from the digest they were sent under."""


class Unauthorized(SkyllamaError):
    status = 401


class Forbidden(SkyllamaError):
    status = 403


class NotFound(SkyllamaError):
    status = 404


class ModelNotFound(NotFound):
    """The named model has no manifest."""


class BlobNotFound(NotFound):
    """No blob exists under the digest."""


class Conflict(SkyllamaError):
    status = 409


class PayloadTooLarge(SkyllamaError):
    status = 413


class TooManyRequests(SkyllamaError):
    status = 429

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(SkyllamaError):
    """The client went away or asked to cancel; Ollama answers 499."""

    status = 499


class Busy(SkyllamaError):
    """The request queue is full; Ollama answers 503 at once."""

    status = 503


class StoreError(SkyllamaError):
    """A storage backend failed in a way the caller cannot fix (retry may help)."""

    status = 503


class RunnerFailed(SkyllamaError):
    """A model's runner process died or stopped answering: only that model's requests fail, and
    the runner is started again by the next request (Ollama: "llama runner process has terminated")."""

    status = 500
