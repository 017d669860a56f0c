"""Issue 19 item 5: the routes each ``InferenceAccelerator`` setting produces, read from the
template as CloudFormation receives it (``sam_translate.py``: aws-sam-translator's own transform,
run in the aws-sam-cli venv) with its conditions resolved for that setting.

- ``cpu``: the inference paths go to the inference function's ``live`` alias; nothing of the GPU
  service exists.
- ``gpu``: the same paths of the same API (``ApiUrl``) go through the GPU stack's VPC link to its
  internal load balancer (streamed, STREAM transfer mode), behind the GPU gate (key check and
  scale-from-zero: 503 + Retry-After); the control plane stays on the API function.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_template import CfnLoader

ROOT = Path(__file__).resolve().parents[2]
SAMENV_PYTHON = Path(os.environ.get("SAMENV", "/tmp/samenv")) / "bin" / "python"
INFERENCE_PATHS = {"/api/generate": "post", "/api/chat": "post", "/api/embed": "post", "/api/embeddings": "post",
                   "/v1/{proxy+}": "x-amazon-apigateway-any-method"}
CONTROL_PATHS = {"/": "x-amazon-apigateway-any-method", "/{proxy+}": "x-amazon-apigateway-any-method"}
GPU_PARAMETERS = {"InferenceAccelerator": "gpu", "GpuVpcId": "vpc-0123456789abcdef0",
                  "GpuSubnetIds": "subnet-01,subnet-02", "GpuImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/g:1"}


def translate(parameters: dict[str, str]) -> dict[str, Any]:
    if not SAMENV_PYTHON.is_file():
        pytest.skip(f"aws-sam-translator is not installed ({SAMENV_PYTHON}; infra/ci/install-sam.sh)")
    done = subprocess.run([str(SAMENV_PYTHON), str(Path(__file__).with_name("sam_translate.py")),
                           str(ROOT / "template.yaml"), json.dumps(parameters)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
    assert done.returncode == 0, done.stderr
    return resolve(json.loads(done.stdout), parameters)


NO_VALUE = object()


def resolve(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The template with its conditions decided for ``parameters``: ``Fn::If`` replaced by the branch
    taken, ``AWS::NoValue`` dropped, resources and outputs whose condition is false removed."""
    values = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
    values.update(parameters)
    decided: dict[str, bool] = {}

    def condition(expr: Any) -> bool:
        if isinstance(expr, dict) and "Condition" in expr:
            return named(expr["Condition"])
        (fn, args), = expr.items()
        if fn == "Fn::Equals":
            left, right = (values[a["Ref"]] if isinstance(a, dict) else a for a in args)
            return bool(left == right)
        if fn == "Fn::Not":
            return not condition(args[0])
        if fn == "Fn::And":
            return all(condition(a) for a in args)
        if fn == "Fn::Or":
            return any(condition(a) for a in args)
        raise AssertionError(f"condition function {fn} is not handled here")

    def named(name: str) -> bool:
        if name not in decided:
            decided[name] = condition(template["Conditions"][name])
        return decided[name]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, yes, no = node["Fn::If"]
                return walk(yes if named(name) else no)
            if node == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            out = {k: walk(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not NO_VALUE}
        if isinstance(node, list):
            return [v for v in (walk(v) for v in node) if v is not NO_VALUE]
        return node

    out = walk(template)
    for section in ("Resources", "Outputs"):
        out[section] = {k: v for k, v in out.get(section, {}).items() if "Condition" not in v or named(v["Condition"])}
    return out


@pytest.fixture(scope="module")
def cpu() -> dict[str, Any]:
    return translate({"InferenceAccelerator": "cpu"})


@pytest.fixture(scope="module")
def gpu() -> dict[str, Any]:
    return translate(GPU_PARAMETERS)


def routes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """path -> the operation the API's one definition gives it (every path has one method here)."""
    body = template["Resources"]["SkyllamaApi"]["Properties"]["Body"]
    found = {}
    for path, item in body["paths"].items():
        (method, operation), = item.items()
        found[path] = {"method": method, **operation}
    return found


def lambda_target(operation: dict[str, Any]) -> Any:
    integration = operation["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy" and integration["httpMethod"] == "POST"
    uri = integration["uri"]["Fn::Sub"]
    if isinstance(uri, list):  # ["...${Alias}...", {"Alias": {"Ref": ...}}]
        return uri[1]["Alias"]["Ref"]
    return uri.split("functions/${", 1)[1].split("}", 1)[0]


def test_cpu_sends_the_inference_paths_to_the_inference_function(cpu: dict[str, Any]) -> None:
    found = routes(cpu)
    assert set(found) == set(INFERENCE_PATHS) | set(CONTROL_PATHS)
    for path, method in INFERENCE_PATHS.items():
        assert found[path]["method"] == method
        assert lambda_target(found[path]) == "InferenceFunctionAliaslive", path
        assert "security" not in found[path]
    for path in CONTROL_PATHS:
        assert lambda_target(found[path]) == "ApiFunction.Arn"
    resources = cpu["Resources"]
    assert not {"GpuService", "GpuGateFunction", "GpuGatePermission"} & set(resources)
    permission = resources["InferenceApiPermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "InferenceFunctionAliaslive"}
    assert permission["Principal"] == "apigateway.amazonaws.com"
    body = resources["SkyllamaApi"]["Properties"]["Body"]
    assert "components" not in body and "x-amazon-apigateway-gateway-responses" not in body


def test_gpu_sends_the_inference_paths_through_the_vpc_link_streamed(gpu: dict[str, Any]) -> None:
    found = routes(gpu)
    assert set(found) == set(INFERENCE_PATHS) | set(CONTROL_PATHS)
    for path, method in INFERENCE_PATHS.items():
        operation = found[path]
        integration = operation["x-amazon-apigateway-integration"]
        assert operation["method"] == method and operation["security"] == [{"GpuGate": []}], path
        assert integration["type"] == "http_proxy" and integration["connectionType"] == "VPC_LINK"
        assert integration["connectionId"] == {"Fn::GetAtt": ["GpuService", "Outputs.VpcLinkId"]}
        target = path.replace("{proxy+}", "{proxy}")
        assert integration["uri"] == {"Fn::Sub": "${GpuService.Outputs.ServiceUrl}" + target}
        assert integration["responseTransferMode"] == "STREAM"
        # streamed integrations may run to 15 minutes (buffered ones stop at 29 s)
        assert 29_000 < integration["timeoutInMillis"] <= 900_000
    assert found["/v1/{proxy+}"]["x-amazon-apigateway-integration"]["requestParameters"] == {
        "integration.request.path.proxy": "method.request.path.proxy"}
    for path in CONTROL_PATHS:  # same API, same stage throttling: the control plane is unchanged
        assert lambda_target(found[path]) == "ApiFunction.Arn" and "security" not in found[path]
    assert "InferenceApiPermission" not in gpu["Resources"]


def test_gpu_gate_is_the_authorizer_and_its_answers_are_json(gpu: dict[str, Any]) -> None:
    body = gpu["Resources"]["SkyllamaApi"]["Properties"]["Body"]
    scheme = body["components"]["securitySchemes"]["GpuGate"]
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert scheme["x-amazon-apigateway-authtype"] == "custom" and authorizer["type"] == "request"
    assert "${GpuGateFunction.Arn}" in authorizer["authorizerUri"]["Fn::Sub"]
    assert authorizer["authorizerResultTtlInSeconds"] == 0  # "starting" must not be cached
    responses = body["x-amazon-apigateway-gateway-responses"]
    for kind in ("ACCESS_DENIED", "INTEGRATION_FAILURE"):  # at zero, and while a task starts or stops
        answer = responses[kind]
        assert answer["statusCode"] == 503
        retry_after = answer["responseParameters"]["gatewayresponse.header.Retry-After"]
        assert retry_after.strip("'").isdigit()
        assert "retry after" in json.loads(answer["responseTemplates"]["application/json"])["error"]
    unauthorized = responses["UNAUTHORIZED"]
    assert unauthorized["statusCode"] == 401
    assert json.loads(unauthorized["responseTemplates"]["application/json"]) == {"error": "unauthorized"}
    gate = gpu["Resources"]["GpuGateFunction"]["Properties"]
    assert gate["Environment"]["Variables"]["SKYLLAMA_TABLE"] == {"Ref": "StateTable"}  # the same keys
    assert gate["Handler"] == "app.handler" and (ROOT / "functions" / "gpu_gate" / "app.py").is_file()
    permission = gpu["Resources"]["GpuGatePermission"]["Properties"]
    assert permission["SourceArn"]["Fn::Sub"].endswith("${SkyllamaApi}/authorizers/*")


def test_the_gpu_service_is_reached_only_through_the_vpc_link() -> None:
    stack = yaml.load((ROOT / "infra" / "gpu" / "template.yaml").read_text(), Loader=CfnLoader)  # noqa: S506
    resources = stack["Resources"]
    balancer = resources["LoadBalancer"]["Properties"]
    assert balancer["Type"] == "network" and balancer["Scheme"] == "internal"
    [listener] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener"]
    assert listener["Protocol"] == "TCP"
    link = resources["VpcLink"]
    assert link["Type"] == "AWS::ApiGateway::VpcLink" and link["Properties"]["TargetArns"] == [{"Ref": "LoadBalancer"}]
    assert stack["Outputs"]["VpcLinkId"]["Value"] == {"Ref": "VpcLink"}
    # nothing may connect to the load balancer but the VPC link; the instances take only the balancer
    assert "SecurityGroupIngress" not in resources["LoadBalancerSecurityGroup"]["Properties"]
    assert balancer["EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"] == "off"
    [ingress] = resources["InstanceSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "LoadBalancerSecurityGroup"} and "CidrIp" not in ingress
    assert "CertificateArn" not in stack["Parameters"] and "AllowedCidr" not in stack["Parameters"]


def test_no_function_is_told_a_gpu_service_url() -> None:
    """SKYLLAMA_GPU_SERVICE_URL was set and never read: the gateway routes to the service now."""
    for path in (ROOT / "template.yaml", ROOT / "infra" / "gpu" / "template.yaml", ROOT / "README.md"):
        assert "GPU_SERVICE_URL" not in path.read_text() and "GpuServiceUrl" not in path.read_text(), path
