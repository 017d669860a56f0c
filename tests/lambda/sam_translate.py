"""Translate a SAM template to CloudFormation, as CloudFormation's AWS::Serverless transform does.

Run with the aws-sam-cli virtual environment's Python (``infra/ci/install-sam.sh``), which has
``aws-sam-translator`` (it conflicts with the project's own dependencies, so it is not in .venv):
``python sam_translate.py template.yaml '{"InferenceAccelerator": "gpu"}'`` prints the translated
template as JSON. The parameters decide nothing here (SAM keeps ``Fn::If``); the tests resolve
the conditions themselves.
"""

import json
import sys
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no managed policy by name (tests/lambda/test_template.py), so none is looked up."""

    def load(self) -> dict[str, Any]:
        return {}


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """Local code and nested templates replaced by the S3 locations ``sam package`` gives them."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::Serverless::Function" and props.get("PackageType") == "Image":
            props["ImageUri"] = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/packaged:{name}"
        elif kind == "AWS::Serverless::Function":
            props["CodeUri"] = f"s3://packaged/{name}.zip"
        elif kind == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://packaged/{name}.zip"
        elif kind == "AWS::Serverless::Application":
            props["Location"] = f"https://s3.us-east-1.amazonaws.com/packaged/{name}.template"
    return template


def main() -> None:
    template = packaged(yaml_parse(Path(sys.argv[1]).read_text()))
    parameters = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    translated = transform(template, parameters, NoManagedPolicies())
    json.dump(translated, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main()
