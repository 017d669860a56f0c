"""Client-given file names (``files`` in ``/api/create``): plain relative paths only.

The name is only ever used as a key and for the converter's staging folder, never joined onto a
server path before it passes this check.
"""

from __future__ import annotations

import re

from .errors import BadRequest

_MAX_NAME_LENGTH = 255
_DRIVE = re.compile(r"^[A-Za-z]:")


def validate_file_name(name: str) -> None:
    """Accept only plain relative paths: no ``..``, absolute paths, backslashes, drives or NULs."""
    problem = None
    if not isinstance(name, str) or not name:
        problem = "is empty"
    elif len(name) > _MAX_NAME_LENGTH:
        problem = "is too long"
    elif any(ord(c) < 32 or c == "\x7f" for c in name):
        problem = "contains control characters"
    elif "\\" in name or _DRIVE.match(name):
        problem = "must use forward slashes and no drive letter"
    elif name.startswith("/"):
        problem = "must be relative"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "must not contain empty, '.' or '..' parts"
    if problem:
        raise BadRequest(f"invalid file name {name[:80]!r}: {problem}")
