"""template.yaml's CloudWatch dashboard and alarms name only metrics that are really emitted.

A widget or an alarm on a metric nobody writes (a typo, a renamed metric, a dimension set the EMF
document does not declare) is an empty graph or an alarm that never fires, and neither lint nor a
deploy notices. So, for namespace ``skyllama``, the metrics and dimension sets are taken from what
the code prints:

- the library's EMF emitters (metering, generation timings), called directly;
- the api and warmer functions, imported as Lambda imports them (moto for AWS) and invoked once:
  their Powertools documents, the ColdStart one included;
- the other handlers' ``add_metric`` calls, read from their source (the inference function needs a
  model and the worker a job; their names get Powertools' ``service`` dimension like the ones above).

For ``AWS/Lambda`` and ``AWS/SQS`` the names and dimensions are those AWS documents.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_lambda_powertools.metrics.provider import cold_start
from lambda_support import ROOT, FakeAws, LambdaContext, decode, http_event, load_event, load_function
from test_template import CfnLoader

from skyllama.adapters.aws.capacity import EcsDesiredCount, LambdaProvisioned, WarmerControls
from skyllama.services.access.metering import UsageRecord, emit_emf
from skyllama.services.metrics import emit_generation_emf

TEMPLATE = ROOT / "template.yaml"
# The AWS metrics the dashboard may use, with their dimension names: docs.aws.amazon.com
# lambda/latest/dg/monitoring-metrics-types.html and AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
AWS_METRICS: dict[str, dict[str, set[frozenset[str]]]] = {
    "AWS/Lambda": {
        **{name: {frozenset({"FunctionName"}), frozenset({"FunctionName", "Resource"})}
           for name in ("Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions")},
        "ProvisionedConcurrentExecutions": {frozenset({"FunctionName", "Resource"})},
        "ProvisionedConcurrencyUtilization": {frozenset({"FunctionName", "Resource"})},
    },
    "AWS/SQS": {name: {frozenset({"QueueName"})} for name in (
        "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent", "NumberOfMessagesReceived")},
}
PSEUDO = {"AWS::Region": "us-east-1", "AWS::StackName": "skyllama", "AWS::AccountId": "123456789012"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as CloudFormation renders it: parameters at their defaults, pseudo
    parameters at sample values, a resource (``${ApiFunction}``, ``${JobsQueue.QueueName}``) as ``<name>``."""
    [body] = [r["Properties"]["DashboardBody"]["Fn::Sub"] for r in template["Resources"].values()
              if r["Type"] == "AWS::CloudWatch::Dashboard"]
    params = template["Parameters"]

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in PSEUDO:
            return PSEUDO[name]
        if name in params:
            return str(params[name]["Default"])
        assert name.split(".")[0] in template["Resources"], f"${{{name}}} names no resource"
        return f"<{name}>"

    parsed: dict[str, Any] = json.loads(re.sub(r"\$\{([^}!]+)\}", value, body))
    return parsed


def widget_metrics(widget: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(namespace, name, dimensions) of each metric a widget graphs, SEARCH expressions included."""
    for row in widget["properties"].get("metrics", []):
        if isinstance(row[0], dict):  # an expression
            for ns_dims, name in re.findall(r"\{([^}]+)\}\s+MetricName=\"(\w+)\"", row[0]["expression"]):
                namespace, *keys = [k.strip() for k in ns_dims.split(",")]
                yield namespace, name, dict.fromkeys(keys, "*")
            continue
        fields = [f for f in row if not isinstance(f, dict)]
        assert len(fields) % 2 == 0, f"dimension without a value in {row}"
        yield fields[0], fields[1], dict(zip(fields[2::2], fields[3::2], strict=True))


def alarm_metrics(alarm: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    props = alarm["Properties"]
    stats = [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q]
    for metric in [props, *stats] if "MetricName" in props else stats:
        yield metric["Namespace"], metric["MetricName"], {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


def referenced(template: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(where, namespace, name, dimensions) of every metric the dashboard and the alarms name."""
    found = [(w["properties"].get("title", w["type"]), *m) for w in dashboard(template)["widgets"]
             if w["type"] == "metric" for m in widget_metrics(w)]
    found += [(name, *m) for name, r in template["Resources"].items()
              if r["Type"] == "AWS::CloudWatch::Alarm" for m in alarm_metrics(r)]
    return found


def emf_documents(out: str) -> list[dict[str, Any]]:
    return [doc for doc in map(json.loads, (ln for ln in out.splitlines() if ln.startswith('{"_aws"')))]


def emitted(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """metric name -> the dimension sets (name -> value) it was emitted with, namespace skyllama."""
    found: dict[str, list[dict[str, str]]] = {}
    for doc in docs:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "skyllama"
            for metric in directive["Metrics"]:
                for keys in directive["Dimensions"]:
                    found.setdefault(metric["Name"], []).append({k: doc[k] for k in keys})
    return found


class ProvisionedApi:
    """The Lambda provisioned-concurrency calls (moto has none), kept per qualifier."""

    def __init__(self) -> None:
        self.set: dict[str, int] = {}

    def get_provisioned_concurrency_config(self, FunctionName: str, Qualifier: str) -> dict[str, Any]:  # noqa: N803
        return {"RequestedProvisionedConcurrentExecutions": self.set.get(Qualifier, 0)}

    def put_provisioned_concurrency_config(self, FunctionName: str, Qualifier: str,  # noqa: N803
                                           ProvisionedConcurrentExecutions: int) -> None:  # noqa: N803
        self.set[Qualifier] = ProvisionedConcurrentExecutions

    def delete_provisioned_concurrency_config(self, FunctionName: str, Qualifier: str) -> None:  # noqa: N803
        self.set.pop(Qualifier, None)


@pytest.fixture(scope="module")
def function_env(fake_aws: FakeAws, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The functions' environment, and a GPU service in moto's ECS for the warmer to scale."""
    ecs = fake_aws.client("ecs")
    ecs.create_cluster(clusterName="dash-gpu")
    ecs.register_task_definition(family="dash-gpu", containerDefinitions=[{"name": "a", "image": "x", "memory": 512}])
    ecs.create_service(cluster="dash-gpu", serviceName="dash-gpu", taskDefinition="dash-gpu", desiredCount=0)
    return {**fake_aws.env, "SKYLLAMA_CACHE_DIR": str(tmp_path_factory.mktemp("dash") / "blobs"), "SKYLLAMA_AUTH": "off"}


@pytest.fixture
def printed(function_env: dict[str, str], fake_aws: FakeAws, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, str]]]:
    """The metrics (and their dimension sets) that the emitters and the api and warmer functions print."""
    for key, value in function_env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    for status in (200, 404, 503):
        emit_emf(UsageRecord(owner="o", key_id="k", model="m", route="/api/chat", method="POST", status=status,
                             duration_ns=5_000_000, prompt_tokens=4, completion_tokens=2))
    emit_generation_emf("smollm2:135m", 1_000_000, 2_000_000, 8, 4_000_000)
    api = load_function("api", function_env, function_name="skyllama-api")
    cold_start.reset_cold_start_flag()  # Powertools keeps it per process; each function is a new environment
    answer = decode(api.handler(http_event("rest-api-v1", "GET", "/api/version"), LambdaContext("skyllama-api")))
    assert answer.status == 200
    warmer = load_function("warmer", function_env, function_name="skyllama-warmer")
    monkeypatch.setattr(warmer, "controls", WarmerControls(
        None, LambdaProvisioned(ProvisionedApi(), "skyllama-inference", "live"),
        EcsDesiredCount(fake_aws.client("ecs"), "dash-gpu", "dash-gpu")))
    cold_start.reset_cold_start_flag()
    warmer.handler(load_event("eventbridge-schedule"), LambdaContext("skyllama-warmer"))
    return emitted(emf_documents(capsys.readouterr().out))


def source_metrics() -> dict[str, str]:
    """name pattern -> file, for each handler's ``metrics.add_metric(name=...)`` (an f-string's
    fields as ``[a-z_]+``), and ``ColdStart`` for a handler that captures it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "functions").glob("*/app.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            kwargs = {k.arg: k.value for k in node.keywords}
            if node.func.attr == "add_metric" and "name" in kwargs:
                name = kwargs["name"]
                if isinstance(name, ast.Constant):
                    found[re.escape(name.value)] = path.parent.name
                elif isinstance(name, ast.JoinedStr):
                    found["".join(re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z_]+"
                                  for v in name.values)] = path.parent.name
            captured = kwargs.get("capture_cold_start_metric")
            if node.func.attr == "log_metrics" and isinstance(captured, ast.Constant) and captured.value is True:
                found[f"ColdStart@{path.parent.name}"] = path.parent.name
    return found


def resource_of(value: Any) -> str:
    """The resource a dimension value names: ``{"Ref": x}``, ``{"Fn::GetAtt": [x, ...]}`` or ``<x...>``."""
    if isinstance(value, dict):
        return str(value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0])
    return str(value).removeprefix("<").split(">")[0].split(".")[0]


def function_dir(template: dict[str, Any], resource: str) -> str:
    """``functions/<dir>`` of a function resource: its CodeUri, or its image's Dockerfile folder."""
    fn = template["Resources"][resource]
    return Path(fn["Properties"].get("CodeUri") or Path(fn["Metadata"]["Dockerfile"]).parent).name


def test_every_skyllama_metric_of_the_dashboard_and_alarms_is_emitted_with_those_dimensions(
        template: dict[str, Any], printed: dict[str, list[dict[str, str]]]) -> None:
    from_source = source_metrics()
    unknown = []
    for where, namespace, name, dims in referenced(template):
        if namespace != "skyllama":
            continue
        if name == "ColdStart":
            function = str(dims.get("function_name", "")).strip("<>")
            assert function in template["Resources"], (where, dims)
            assert f"ColdStart@{function_dir(template, function)}" in from_source, f"{where}: {function} captures no ColdStart"
            assert set(dims) == {"function_name", "service"} and dims["service"] == "skyllama", (where, dims)
            continue
        if name in printed:  # emitted here: the graph's dimension set must be one the documents declare
            sets = printed[name]
            ok = any(set(s) == set(dims) and all(v == "*" or s[k] == v for k, v in dims.items()) for s in sets)
            if not ok:
                unknown.append(f"{where}: {name} {dims} (emitted with {sets})")
        elif any(re.fullmatch(pattern, name) for pattern in from_source):
            if dims != {"service": "skyllama"}:  # a handler's Metrics: Powertools' service dimension only
                unknown.append(f"{where}: {name} {dims} (a handler metric has only service=skyllama)")
        else:
            unknown.append(f"{where}: {name} is emitted nowhere")
    assert not unknown, "\n".join(unknown)


def test_the_job_statuses_graphed_are_statuses_the_worker_counts(template: dict[str, Any]) -> None:
    runner = (ROOT / "layers/core/skyllama/services/jobs/runner.py").read_text()
    graphed = [name.removeprefix("Jobs_") for _w, _ns, name, _d in referenced(template) if name.startswith("Jobs_")]
    assert graphed, "the dashboard graphs no job outcome"
    for status in graphed:
        assert re.search(rf"status[\"']?\s*[:=]\s*\"{status}\"", runner), f"the job runner never sets status {status}"


def test_every_aws_metric_is_a_documented_one_on_a_resource_of_the_stack(template: dict[str, Any]) -> None:
    for where, namespace, name, dims in referenced(template):
        if namespace == "skyllama":
            continue
        assert name in AWS_METRICS[namespace], f"{where}: {namespace} has no metric {name}"
        assert frozenset(dims) in AWS_METRICS[namespace][name], f"{where}: {name} has no dimensions {sorted(dims)}"
        for value in dims.values():
            assert resource_of(value) in template["Resources"], f"{where}: {value} is not a resource of the stack"


def test_the_dashboard_covers_what_the_operator_needs(template: dict[str, Any]) -> None:
    names = {(ns, name) for _w, ns, name, _d in referenced(template)}
    for needed in [("AWS/Lambda", "Invocations"), ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"),
                   ("skyllama", "TimeToFirstToken"), ("skyllama", "TokensPerSecond"), ("skyllama", "ColdStart"),
                   ("skyllama", "WarmUps"), ("skyllama", "ProvisionedConcurrency"),
                   ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("skyllama", "CompletionTokens")]:
        assert needed in names, f"no widget or alarm on {needed}"
    widgets = dashboard(template)["widgets"]
    ttft = [w for w in widgets if any(m[1] == "TimeToFirstToken" for m in widget_metrics(w) if w["type"] == "metric")]
    stats = {opt.get("stat") for w in ttft for row in w["properties"]["metrics"] for opt in row if isinstance(opt, dict)}
    assert {"p50", "p99"} <= stats
    per_day = [w for w in widgets if w["properties"].get("period") == 86400]
    assert any(m[1] == "CompletionTokens" for w in per_day for m in widget_metrics(w)), "no tokens-per-day graph"
    queues = {resource_of(d["QueueName"]) for _w, _ns, name, d in referenced(template)
              if name == "ApproximateNumberOfMessagesVisible"}
    assert {"JobsQueue", "JobsDeadLetterQueue"} <= queues


def test_alarms_on_error_rate_dlq_depth_and_p99_ttft_notify_the_optional_topic(template: dict[str, Any]) -> None:
    alarms = {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    for name, props in alarms.items():
        for actions in ("AlarmActions", "OKActions"):
            assert props[actions] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}, name
        assert props["TreatMissingData"] == "notBreaching", name  # no traffic is not an outage
    rate = alarms["ErrorRateAlarm"]
    [expression] = [q["Expression"] for q in rate["Metrics"] if q.get("ReturnData")]
    ids = {q["Id"] for q in rate["Metrics"]} - {"rate"}
    assert ids == set(re.findall(r"[a-z]+(?=[, )])", expression)) - {"FILL"}, "every query is in the expression"
    assert rate["Threshold"] == {"Ref": "ErrorRateThresholdPercent"}
    dlq = alarms["DeadLetterQueueAlarm"]
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["JobsDeadLetterQueue", "QueueName"]}}]
    assert dlq["Threshold"] == 0 and dlq["ComparisonOperator"] == "GreaterThanThreshold"
    ttft = alarms["TimeToFirstTokenAlarm"]
    assert ttft["MetricName"] == "TimeToFirstToken" and ttft["ExtendedStatistic"] == "p99"
    assert ttft["Threshold"] == {"Ref": "TtftP99ThresholdMs"}
    [board] = [w for w in dashboard(template)["widgets"] if w["type"] == "alarm"]
    assert sorted(board["properties"]["alarms"]) == sorted(f"<{name}.Arn>" for name in alarms)


def test_the_metrics_carry_the_figures_the_graphs_read(printed: dict[str, list[dict[str, str]]],
                                                       fake_aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    """ServerErrors only for a 5xx answer, TokensPerSecond the decode rate, the warmer's targets."""
    capsys.readouterr()
    emit_emf(UsageRecord(owner="o", key_id="k", model="m", route="/api/tags", method="GET", status=404, duration_ns=1))
    [not_found] = emf_documents(capsys.readouterr().out)
    assert not_found["Errors"] == [1.0] and "ServerErrors" not in not_found
    emit_emf(UsageRecord(owner="o", key_id="k", model="m", route="/api/chat", method="POST", status=503, duration_ns=1))
    [failed] = emf_documents(capsys.readouterr().out)
    assert failed["ServerErrors"] == [1.0]
    emit_generation_emf("m", 0, 1_000_000, 50, 2_000_000_000)  # 50 tokens in 2 s
    [gen] = emf_documents(capsys.readouterr().out)
    assert gen["TokensPerSecond"] == [25.0]
    assert gen["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "service"], ["service"]]
    assert {"ProvisionedConcurrency", "GpuDesiredCount", "LiveModels", "WarmUps", "ColdStart", "ApiRequests"} <= set(printed)
    assert {"function_name": "skyllama-api", "service": "skyllama"} in printed["ColdStart"]
    assert {"function_name": "skyllama-warmer", "service": "skyllama"} in printed["ColdStart"]
