"""Expands the SAM template offline with the SAM translator (the SAM CLI's own library), so
that cfn-lint can check what CloudFormation will really get: routes, permissions and the
dependencies between resources, where a circular one only shows after the transform.

    python infra/transform.py infra/template.yaml OUT.json
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs; offline there are none to look up."""

    def load(self):
        return {}


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # `sam build` replaces the local CodeUri with an S3 location; stand in for it.
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://herald-build/placeholder.zip"
    expanded = transform(template, {}, NoManagedPolicies(), {})
    with open(target, "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=1, default=str)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
