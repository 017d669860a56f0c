"""template.yaml: `sam validate --lint` and `cfn-lint` pass, and the template declares what the
design requires (encryption, no public access, TTL, PITR, DLQ, schedule, layer), with the same
table/queue/lifecycle schema as ``skyllama.adapters.aws.tables`` creates for the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from skyllama.adapters.aws import tables

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation short-form tags (``!Ref x`` -> ``{"Ref": "x"}``)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def one(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.values()))


def _tool(name: str, *candidates: Path) -> str | None:
    for path in (os.environ.get(f"SKYLLAMA_{name.upper().replace('-', '_')}"), shutil.which(name), *candidates):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        SAM_CLI_TELEMETRY="0",
    )
    return env


def test_sam_validate_lint() -> None:
    sam = _tool("sam", Path("/tmp/samenv/bin/sam"), Path.home() / ".local/bin/sam")
    if sam is None:
        pytest.skip("aws-sam-cli is not installed (pip install aws-sam-cli in its own venv; see README)")
    result = subprocess.run(
        [sam, "validate", "--lint", "--region", "us-east-1", "--template-file", str(TEMPLATE)],
        cwd=ROOT, env=_offline_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint() -> None:
    cfn_lint = _tool("cfn-lint", Path(sys.executable).parent / "cfn-lint", Path("/tmp/samenv/bin/cfn-lint"))
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed (pip install cfn-lint)")
    result = subprocess.run(
        [cfn_lint, str(TEMPLATE)], cwd=ROOT, env=_offline_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bucket_is_encrypted_private_and_cleans_up_uploads(template: dict[str, Any]) -> None:
    props = one(template, "AWS::S3::Bucket")["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in ("AES256", "aws:kms")
    block = props["PublicAccessBlockConfiguration"]
    assert all(block[k] is True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    expected = {r["ID"]: r for r in tables.lifecycle_rules()}
    assert set(rules) == set(expected)
    abort = rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]
    assert abort["DaysAfterInitiation"] == tables.ABORT_MULTIPART_DAYS
    assert rules["expire-temporary-uploads"]["ExpirationInDays"] == tables.TEMP_UPLOAD_DAYS
    policy = one(template, "AWS::S3::BucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false" for s in policy)


def test_table_matches_the_adapter_schema(template: dict[str, Any]) -> None:
    table = one(template, "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["BillingMode"] == tables.BILLING_MODE
    assert props["KeySchema"] == tables.TABLE_KEY_SCHEMA
    assert props["AttributeDefinitions"] == tables.TABLE_ATTRIBUTES
    assert props["TimeToLiveSpecification"] == {"AttributeName": tables.TTL_ATTRIBUTE, "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_queue_has_a_dead_letter_queue(template: dict[str, Any]) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    main = queues["JobsQueue"]["Properties"]
    redrive = main["RedrivePolicy"]
    dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"]
    assert dlq[1] == "Arn" and dlq[0] in queues and dlq[0] != "JobsQueue"
    assert redrive["maxReceiveCount"] == tables.QUEUE_MAX_RECEIVE_COUNT
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    assert main["VisibilityTimeout"] == tables.QUEUE_VISIBILITY_TIMEOUT >= 6 * worker["Timeout"]
    event = worker["Events"]["Jobs"]
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert "ReportBatchItemFailures" in event["Properties"]["FunctionResponseTypes"]


def test_functions_layer_schedule_and_image(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Serverless::Function")
    assert set(functions) == {"ApiFunction", "InferenceFunction", "StreamingFunction", "WorkerFunction",
                              "WarmerFunction", "GpuGateFunction"}
    assert functions["GpuGateFunction"]["Condition"] == "UseGpu"  # the GPU routes' authorizer
    layer = one(template, "AWS::Serverless::LayerVersion")
    assert layer["Properties"]["ContentUri"] == "layers/core"
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    for name in ("ApiFunction", "WorkerFunction", "WarmerFunction"):
        props = functions[name]["Properties"]
        assert props["CodeUri"] == f"functions/{name.removesuffix('Function').lower()}"
        assert props["Layers"] == [{"Ref": "CoreLayer"}]
    inference = functions["InferenceFunction"]
    assert inference["Properties"]["PackageType"] == "Image"
    assert {"Dockerfile", "DockerContext"} <= set(inference["Metadata"])
    schedule = functions["WarmerFunction"]["Properties"]["Events"]["Schedule"]
    assert schedule["Type"] == "Schedule" and schedule["Properties"]["Schedule"].startswith("rate(")


def test_api_passes_blobs_as_binary_and_ndjson_as_text(template: dict[str, Any]) -> None:
    api = one(template, "AWS::Serverless::Api")["Properties"]
    media = api["BinaryMediaTypes"]
    assert "application~1octet-stream" in media
    assert not any("ndjson" in m or "json" in m or m in ("*~1*", "*/*") for m in media)
    throttle = api["MethodSettings"][0]
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(throttle)
    assert "ApiUrl" in template["Outputs"]


def test_policies_are_scoped(template: dict[str, Any]) -> None:
    """No function gets a managed admin policy or an action on every resource."""
    for name, fn in resources(template, "AWS::Serverless::Function").items():
        for policy in fn["Properties"].get("Policies", []):
            assert not isinstance(policy, str), f"{name}: managed policy {policy}"
            for statement in policy.get("Statement", []):
                statement = statement.get("Fn::If", [None, statement])[1]  # a conditional statement's own
                assert statement["Resource"] != "*", f"{name}: {statement}"
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not any(a.endswith(":*") or a == "*" for a in actions), f"{name}: {actions}"


def test_streaming_function_runs_the_custom_runtime_behind_a_streaming_url(template: dict[str, Any]) -> None:
    """Same image as the inference function, entry point stream.py, Function URL in RESPONSE_STREAM mode."""
    functions = resources(template, "AWS::Serverless::Function")
    streaming, inference = functions["StreamingFunction"], functions["InferenceFunction"]
    assert streaming["Metadata"]["Dockerfile"] == inference["Metadata"]["Dockerfile"]
    entry = streaming["Properties"]["ImageConfig"]["EntryPoint"]
    assert entry[-1] == "/var/task/stream.py" and (ROOT / "functions" / "inference" / "stream.py").is_file()
    assert "stream.py" in (ROOT / "functions" / "inference" / "Dockerfile").read_text()
    url = streaming["Properties"]["FunctionUrlConfig"]
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    assert template["Outputs"]["StreamingUrl"]["Value"] == {"Fn::GetAtt": ["StreamingFunctionUrl", "FunctionUrl"]}


def test_warmer_can_warm_provision_and_scale_the_gpu_service(template: dict[str, Any]) -> None:
    """The warm policy's targets: the inference function's ``live`` alias (provisioned concurrency),
    both inference functions (warm-ups) and, when deployed, the GPU service's desired count."""
    functions = resources(template, "AWS::Serverless::Function")
    assert functions["InferenceFunction"]["Properties"]["AutoPublishAlias"] == "live"
    warmer = functions["WarmerFunction"]["Properties"]
    env = warmer["Environment"]["Variables"]
    assert env["SKYLLAMA_INFERENCE_ALIAS"] == "live"
    assert env["SKYLLAMA_GPU_SERVICE"]["Fn::If"][1] == {"Fn::GetAtt": ["GpuService", "Outputs.ServiceName"]}
    invoked = [p["LambdaInvokePolicy"]["FunctionName"] for p in warmer["Policies"] if "LambdaInvokePolicy" in p]
    assert invoked == [{"Ref": "InferenceFunction"}, {"Ref": "StreamingFunction"}]
    [statements] = [p["Statement"] for p in warmer["Policies"] if "Statement" in p]
    provisioned = statements[0]
    assert set(provisioned["Action"]) == {"lambda:GetProvisionedConcurrencyConfig",
                                          "lambda:PutProvisionedConcurrencyConfig",
                                          "lambda:DeleteProvisionedConcurrencyConfig"}
    assert provisioned["Resource"]["Fn::Sub"].endswith(":function:${InferenceFunction}:live")
    gpu = statements[1]["Fn::If"]
    assert gpu[0] == "UseGpu" and gpu[1]["Action"] == ["ecs:DescribeServices", "ecs:UpdateService"]
