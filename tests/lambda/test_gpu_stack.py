"""The GPU service: infra/gpu/template.yaml (ECS on GPU EC2 capacity, scaled to zero) passes cfn-lint,
asks for a GPU per task, and runs the image infra/gpu/Dockerfile builds with CUDA under uvicorn;
template.yaml nests it when InferenceAccelerator is gpu.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from test_template import CfnLoader

from skyllama.composition import build_runtime
from skyllama.http.app import create_app
from skyllama.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "infra" / "gpu" / "template.yaml"
DOCKERFILE = ROOT / "infra" / "gpu" / "Dockerfile"
GPU_FAMILIES = ("g4dn.", "g5.", "g6.", "g6e.", "p4d.", "p5.")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return yaml.load(STACK.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def of_type(stack: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [r for r in stack["Resources"].values() if r["Type"] == kind]
    assert len(found) == 1, kind
    return found[0]["Properties"]


def test_cfn_lint() -> None:
    cfn_lint = next(
        (
            p
            for p in (Path(sys.executable).parent / "cfn-lint", Path("/tmp/samenv/bin/cfn-lint"))
            if p.is_file()
        ),
        None,
    )
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed (pip install cfn-lint)")
    result = subprocess.run([str(cfn_lint), str(STACK)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_task_gets_a_gpu_on_gpu_instances(stack: dict[str, Any]) -> None:
    task = of_type(stack, "AWS::ECS::TaskDefinition")
    assert task["RequiresCompatibilities"] == ["EC2"]
    (container,) = task["ContainerDefinitions"]
    assert {"Type": "GPU", "Value": "1"} in container["ResourceRequirements"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["SKYLLAMA_BACKEND"] == "aws" and env["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert container["PortMappings"][0]["ContainerPort"] == 11434
    params = stack["Parameters"]
    assert all(t.startswith(GPU_FAMILIES) for t in params["InstanceType"]["AllowedValues"])
    assert "/gpu/" in params["GpuAmiId"]["Default"]
    user_data = of_type(stack, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]["Fn::Base64"][
        "Fn::Sub"
    ]
    assert "ECS_ENABLE_GPU_SUPPORT=true" in user_data


def test_service_scales_to_zero_and_instances_follow(stack: dict[str, Any]) -> None:
    """Desired count 0 by default (the warmer raises it); the capacity provider brings GPU instances
    up for tasks and back to none without them; a cost guard caps the instances."""
    params = stack["Parameters"]
    service = of_type(stack, "AWS::ECS::Service")
    assert service["DesiredCount"] == {"Ref": "DesiredCount"} and params["DesiredCount"]["Default"] == 0
    asg = of_type(stack, "AWS::AutoScaling::AutoScalingGroup")
    assert asg["MinSize"] == "0" and asg["MaxSize"] == {"Ref": "MaxInstances"}
    scaling = of_type(stack, "AWS::ECS::CapacityProvider")["AutoScalingGroupProvider"]["ManagedScaling"]
    assert scaling["Status"] == "ENABLED" and scaling["TargetCapacity"] == 100
    assert {"ClusterName", "ServiceName", "ServiceUrl"} <= set(stack["Outputs"])


def test_task_role_is_scoped(stack: dict[str, Any]) -> None:
    statements = [
        s
        for p in stack["Resources"]["TaskRole"]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    ]
    assert statements
    for statement in statements:
        assert statement["Resource"] != "*" and not any(a.endswith(":*") for a in statement["Action"])


def test_health_check_path_is_answered_by_the_app(stack: dict[str, Any], tmp_path: Path) -> None:
    """The target group's health check, with the container's OLLAMA_HOST: the Host API Gateway's
    VPC_LINK integration sends (the internal load balancer's name) and a health check's (the
    target's address) both pass."""
    path = of_type(stack, "AWS::ElasticLoadBalancingV2::TargetGroup")["HealthCheckPath"]
    (container,) = of_type(stack, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    host = next(e["Value"] for e in container["Environment"] if e["Name"] == "OLLAMA_HOST")
    settings = Settings.from_env({"OLLAMA_HOST": host}, models=tmp_path, state_db=tmp_path / "state.db")
    runtime = build_runtime(settings)  # the whole app, as the container serves it
    answers = []
    try:
        for base in ("http://skyllama-gpu-0123456789abcdef.elb.us-east-1.amazonaws.com", "http://10.0.1.23:32768"):
            with TestClient(create_app(runtime), base_url=base) as client:
                answers.append(client.get(path))
    finally:
        runtime.close()
    assert all(r.status_code == 200 and "running" in r.text for r in answers)


def test_dockerfile_builds_llama_cpp_with_cuda_and_serves_with_uvicorn() -> None:
    text = DOCKERFILE.read_text()
    assert "-DGGML_CUDA=on" in text and "FROM nvidia/cuda:" in text
    pinned = next(
        d
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if d.startswith("llama-cpp-python")
    )
    assert f'"{pinned}"' in text  # the same llama-cpp-python as everywhere else
    cmd = re.search(r"^CMD \[(.*?)\]\s*$", text.replace("\\\n", ""), re.M)
    assert cmd is not None
    assert '"uvicorn", "--factory", "skyllama.http.app:create_app"' in cmd.group(
        1
    ) and '"11434"' in cmd.group(1)


def test_template_nests_the_gpu_stack_for_gpu_deployments() -> None:
    main = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)  # noqa: S506
    nested = main["Resources"]["GpuService"]
    assert nested["Type"] == "AWS::Serverless::Application" and nested["Condition"] == "UseGpu"
    assert nested["Properties"]["Location"] == "infra/gpu/template.yaml"
    stack_params = yaml.load(STACK.read_text(), Loader=CfnLoader)["Parameters"]  # noqa: S506
    required = {name for name, p in stack_params.items() if "Default" not in p}
    assert required <= set(nested["Properties"]["Parameters"])
    assert nested["Properties"]["Parameters"]["ModelBucket"] == {"Ref": "ModelBucket"}
    assert main["Parameters"]["InferenceAccelerator"]["Default"] == "cpu"  # no GPU bill unless asked for
