#!/usr/bin/env bash
# Regenerate the sample events of tests/lambda with `sam local generate-event` (aws-sam-cli in
# its own venv: infra/ci/install-sam.sh). The tests load these files, so they never need sam.
# Each file is a template: a test sets the method, path, headers and body it needs.
# sam has no Function URL generator; a Function URL event is the HTTP API v2 payload with the
# function URL's domain and no route, so function-url.json is derived from http-api-v2.json.
set -euo pipefail
cd "$(dirname "$0")"
SAM="${SAM:-$(command -v sam || echo /tmp/samenv/bin/sam)}"
export SAM_CLI_TELEMETRY=0
"$SAM" local generate-event apigateway aws-proxy --method GET --path api/tags --stage prod > rest-api-v1.json
"$SAM" local generate-event apigateway http-api-proxy --method GET --path api/tags > http-api-v2.json
"$SAM" local generate-event alb request --method GET --path api/tags > alb.json
"$SAM" local generate-event sqs receive-message > sqs.json
"$SAM" local generate-event cloudwatch scheduled-event > eventbridge-schedule.json
python3 - <<'PY'
import json

event = json.load(open("http-api-v2.json"))
domain = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
event["requestContext"]["domainName"] = domain
event["requestContext"]["domainPrefix"] = domain.split(".")[0]
event["requestContext"]["apiId"] = domain.split(".")[0]
event["requestContext"].pop("authorizer", None)
event["requestContext"].pop("authentication", None)
event.pop("pathParameters", None)
event.pop("stageVariables", None)
event["headers"]["host"] = domain
json.dump(event, open("function-url.json", "w"), indent=2)
open("function-url.json", "a").write("\n")
PY
