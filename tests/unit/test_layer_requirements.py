"""The Lambda packaging ships what the code imports, and nothing more.

- the core layer's requirements follow pyproject's runtime dependencies (less what the layer never
  runs), every one of them is imported by the library or a function, and together with the runtime
  they cover every third-party import of the code the layer runs;
- the zip functions (api, worker, warmer) bundle no botocore of their own: their requirements,
  resolved through the installed distributions' metadata, never reach boto3/botocore (the python3.12
  runtime has them), and no function uses the Powertools Tracer, whose X-Ray SDK is in neither.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "core" / "skyllama"
FUNCTIONS = ROOT / "functions"
LAYER_REQUIREMENTS = ROOT / "layers" / "core" / "requirements.txt"
ZIP_FUNCTIONS = ("api", "worker", "warmer")

# pyproject dependencies the layer leaves out, with the reason.
NOT_IN_LAYER = {
    "llama-cpp-python": "the inference image builds it",
    "uvicorn": "the CLI's server (and the image's GPU-host mode)",
    "rich": "the CLI's tables and progress bars",
    "boto3": "the python3.12 runtime ships it",
}
# Library modules the Lambda functions never import: the CLI and the engine (image only).
NOT_RUN_BY_THE_LAYER = ("cli.py", "__main__.py", "client/", "http/server_timeouts.py", "engine/llama.py",
                        "engine/multiseq.py", "engine/adapters.py", "engine/vision.py")
# Third-party imports that reach the layer's code without a line of their own, with the reason.
PROVIDED_WITHOUT_A_LINE = {
    "boto3": "the python3.12 runtime",
    "botocore": "the python3.12 runtime",
    "llama-cpp-python": "the inference image; imported only by runner processes (engine/runner/child.py)",
    "starlette": "fastapi's own dependency, pinned by it",
    "anyio": "starlette's and httpx's dependency",
    "pydantic-core": "pydantic's own dependency, pinned by it (http/wire_base.py raises its PydanticCustomError)",
}
RUNTIME_SDK = {"boto3", "botocore", "s3transfer"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names(lines: list[str]) -> set[str]:
    found = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            found.add(canonical(Requirement(line).name))
    return found


def pyproject_dependencies() -> set[str]:
    return names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def layer_requirements() -> set[str]:
    return names(LAYER_REQUIREMENTS.read_text().splitlines())


def imported_modules(files: list[Path]) -> set[str]:
    """Top-level names of every absolute import, module level or inside a function (a function's own
    modules, such as stream.py's ``import app``, left out)."""
    found: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - {file.stem for file in files if file.parent.parent == FUNCTIONS}


def third_party_distributions(modules: set[str]) -> set[str]:
    """The installed distributions that provide these modules (the stdlib and skyllama left out)."""
    by_module = metadata.packages_distributions()
    return {canonical(dist) for module in modules - sys.stdlib_module_names - {"skyllama"}
            for dist in by_module.get(module, [module])}


def library_files(*, run_by_the_layer: bool = False) -> list[Path]:
    files = sorted(LIBRARY.rglob("*.py"))
    if run_by_the_layer:
        files = [f for f in files if not f.relative_to(LIBRARY).as_posix().startswith(NOT_RUN_BY_THE_LAYER)]
    return files


def function_files() -> list[Path]:
    return sorted(FUNCTIONS.glob("*/*.py"))


def requirement_closure(requirements: set[str]) -> set[str]:
    """Every distribution these requirements install, from the installed distributions' metadata."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            raise AssertionError(f"{name} is not installed here, so what it pulls cannot be checked") from None
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonical(requirement.name))
    return seen


def test_layer_requirements_match_pyproject() -> None:
    assert pyproject_dependencies() - set(NOT_IN_LAYER) == layer_requirements()


def test_every_runtime_dependency_is_imported_by_the_library() -> None:
    imported = third_party_distributions(imported_modules(library_files()))
    assert pyproject_dependencies() - imported == set(), "a runtime dependency nothing imports"


def test_every_layer_requirement_is_imported_by_the_library_or_a_function() -> None:
    imported = third_party_distributions(imported_modules(library_files() + function_files()))
    assert layer_requirements() - imported == set(), "the layer ships a distribution nothing imports"


def test_the_layer_and_the_runtime_cover_what_the_lambda_code_imports() -> None:
    imported = third_party_distributions(imported_modules(library_files(run_by_the_layer=True) + function_files()))
    assert imported - layer_requirements() - set(PROVIDED_WITHOUT_A_LINE) == set()


def test_zip_functions_bundle_no_botocore() -> None:
    for function in ZIP_FUNCTIONS:
        declared = names((FUNCTIONS / function / "requirements.txt").read_text().splitlines())
        pulled = requirement_closure(declared)
        assert pulled & RUNTIME_SDK == set(), f"functions/{function} would bundle {pulled & RUNTIME_SDK}"
        assert "aws-xray-sdk" not in pulled, f"functions/{function} bundles the X-Ray SDK"


def test_no_function_uses_the_powertools_tracer() -> None:
    # Tracer() needs aws-xray-sdk, which neither the layer nor the runtime provides.
    for file in function_files():
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aws_lambda_powertools"):
                assert "Tracer" not in {alias.name for alias in node.names}, file
                assert not (node.module or "").startswith("aws_lambda_powertools.tracing"), file
