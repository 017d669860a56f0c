"""`sam build` as an operator runs it (README, "Deploy to AWS"): the core layer and every zip
function of ``template.yaml`` build with a Python 3.12 on PATH (SAM's python3.12 build method
checks for that interpreter and uses its pip), the layer holds CPython 3.12 wheels, each
handler imports on Python 3.12 with the built layer (and boto3, which Lambda's runtime
provides), and without a Python 3.12 the build fails with the error the README names.

The image functions (inference) need Docker and a registry pull of
``public.ecr.aws/lambda/python:3.12``: they are left out of the template this builds, as the
README says. A Python 3.12 is found on PATH, as ``SKYLLAMA_PYTHON312``, or in pyenv; without
one (or without aws-sam-cli) the tests skip and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_template import ROOT, TEMPLATE, CfnLoader, _offline_env, _tool

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function plus layers, unzipped (Lambda quotas)
BUILD_TIMEOUT = 900


def python312() -> str | None:
    """A Python 3.12 interpreter: ``SKYLLAMA_PYTHON312``, ``python3.12`` on PATH, or pyenv's."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [os.environ.get("SKYLLAMA_PYTHON312"), shutil.which("python3.12"),
                  *map(str, sorted(pyenv_root.glob("versions/3.12*/bin/python3.12"), reverse=True))]
    for path in candidates:
        if not path:
            continue
        try:  # a pyenv shim is on PATH even when no 3.12 is selected; ask the interpreter itself
            got = subprocess.run([path, "-c", "import sys, pip; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if got.returncode == 0 and got.stdout.strip() == "(3, 12)":
            return path
    return None


def zip_template() -> dict[str, Any]:
    """template.yaml with its layers and zip functions only (events dropped: a build reads none)."""
    template = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    keep: dict[str, Any] = {}
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::LayerVersion" or (
                resource["Type"] == "AWS::Serverless::Function" and props.get("PackageType") != "Image"):
            resource = json.loads(json.dumps(resource))
            resource["Properties"].pop("Events", None)
            keep[name] = resource
    out = {k: template[k] for k in ("AWSTemplateFormatVersion", "Transform", "Globals", "Parameters", "Conditions")
           if k in template}
    out["Resources"] = keep
    return out


def sam_build(sam: str, folder: Path, path: str) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template.json").write_text(json.dumps(zip_template(), indent=1))
    env = {**_offline_env(), "PATH": path, "SAM_CLI_TELEMETRY": "0"}
    return subprocess.run([sam, "build", "--template-file", "template.json", "--base-dir", str(ROOT),
                           "--build-dir", str(folder / "build")],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)


@pytest.fixture(scope="module")
def sam() -> str:
    found = _tool("sam", Path("/tmp/samenv/bin/sam"), Path.home() / ".local/bin/sam")
    if found is None:
        pytest.skip("aws-sam-cli is not installed (bash infra/ci/install-sam.sh)")
    return found


@pytest.fixture(scope="module")
def py312() -> str:
    found = python312()
    if found is None:
        pytest.skip("no Python 3.12 with pip on this machine (PATH, SKYLLAMA_PYTHON312, pyenv): "
                    "`sam build` of the python3.12 functions needs one, or --use-container with Docker")
    return found


@pytest.fixture(scope="module")
def built(sam: str, py312: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sam build`` of the layer and the zip functions, Python 3.12 first on PATH."""
    folder = tmp_path_factory.mktemp("sam-build")
    done = sam_build(sam, folder, f"{Path(py312).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert done.returncode == 0 and "Build Succeeded" in done.stdout + done.stderr, \
        (done.stdout + done.stderr)[-4000:]
    return folder / "build"


def zip_functions() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in zip_template()["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def test_the_layer_and_every_zip_function_build(built: Path) -> None:
    template = yaml.load((built / "template.yaml").read_text(), Loader=CfnLoader)  # noqa: S506
    functions = zip_functions()
    assert {"ApiFunction", "WorkerFunction", "WarmerFunction"} <= set(functions)
    for name, resource in functions.items():
        code = built / template["Resources"][name]["Properties"]["CodeUri"]
        handler_module = resource["Properties"]["Handler"].rsplit(".", 1)[0]
        assert (code / f"{handler_module}.py").is_file(), name
    layer = built / template["Resources"]["CoreLayer"]["Properties"]["ContentUri"] / "python"
    assert (layer / "skyllama" / "__init__.py").is_file() and (layer / "skyllama" / "composition.py").is_file()
    # the compiled wheels are CPython 3.12's, the runtime the functions declare
    for package in ("numpy", "pydantic_core", "markupsafe"):
        assert list((layer / package).rglob("*.cpython-312-x86_64-linux-gnu.so")), package
        assert not list((layer / package).rglob("*.cpython-311-*.so")), package


def test_each_function_fits_lambdas_unzipped_limit_with_the_layer(built: Path) -> None:
    def size(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    layer = size(built / "CoreLayer")
    for name in zip_functions():
        assert layer + size(built / name) < LAMBDA_UNZIPPED_LIMIT, (name, layer)


@pytest.fixture(scope="module")
def runtime_boto3(py312: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boto3 for Python 3.12 in a folder of its own: Lambda's python3.12 runtime provides it, the layer does not."""
    target = tmp_path_factory.mktemp("lambda-runtime")
    done = subprocess.run([py312, "-m", "pip", "install", "-q", "--target", str(target), "boto3"],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"boto3 for Python 3.12 could not be installed: {done.stderr.strip()[-300:]}")
    return target


@pytest.mark.parametrize("function", sorted(zip_functions()))
def test_each_handler_imports_on_python_312_with_the_built_layer(built: Path, py312: str, runtime_boto3: Path,
                                                                  function: str) -> None:
    """As Lambda loads it: the function's folder, then the layer's python/, then the runtime's boto3;
    ``-I`` keeps this machine's site-packages and environment out."""
    code, handler = built / function, zip_functions()[function]["Properties"]["Handler"]
    module, attr = handler.rsplit(".", 1)
    env = {"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_LAMBDA_FUNCTION_NAME": f"skyllama-{function}",
           "SKYLLAMA_BACKEND": "aws", "SKYLLAMA_BUCKET": "skyllama-models", "SKYLLAMA_TABLE": "skyllama-state",
           "SKYLLAMA_QUEUE_URL": "http://127.0.0.1:9/000000000000/skyllama-jobs",
           "SKYLLAMA_INFERENCE_FUNCTION": "skyllama-inference", "POWERTOOLS_TRACE_DISABLED": "1"}
    path = [str(code), str(built / "CoreLayer" / "python"), str(runtime_boto3)]
    script = (f"import sys; sys.path[:0] = {path!r}; import {module}; "
              f"assert callable({module}.{attr}); print({module}.__file__, sys.version_info[:2])")
    done = subprocess.run([py312, "-I", "-c", script], cwd=code, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[0] == str(code / f"{module}.py") and done.stdout.strip().endswith("(3, 12)")


def test_without_python_312_the_build_fails_as_the_readme_says(sam: str, tmp_path: Path) -> None:
    """The error an operator with only Python 3.11 meets; the README's deploy steps name it."""
    path = os.pathsep.join(d for d in ("/usr/local/bin", "/usr/bin", "/bin") if not (Path(d) / "python3.12").exists())
    if any((Path(d) / "python3.12").exists() for d in ("/usr/local/bin", "/usr/bin", "/bin")):
        pytest.skip("this machine has a system Python 3.12")
    done = sam_build(sam, tmp_path, path)
    assert done.returncode != 0
    assert "Binary validation failed for python" in done.stdout + done.stderr
    assert "runtime: python3.12" in done.stdout + done.stderr
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "Binary validation failed for python" in readme and "sam build --use-container" in readme
    assert "runtime: python3.12" in readme and "public.ecr.aws/lambda/python:3.12" in readme
