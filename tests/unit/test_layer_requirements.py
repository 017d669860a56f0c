"""The Lambda layer's requirements list every runtime dependency the functions import."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_IN_LAYER = {"llama-cpp-python", "uvicorn", "rich", "boto3"}


def names(lines: list[str]) -> set[str]:
    found = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            found.add(re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower())
    return found


def test_layer_requirements_match_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = (ROOT / "layers" / "core" / "requirements.txt").read_text().splitlines()
    assert names(project) - NOT_IN_LAYER == names(layer)
