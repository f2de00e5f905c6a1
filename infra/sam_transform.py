"""Expands template.yaml into plain CloudFormation with AWS's own SAM translator (the transform
`sam validate` and CloudFormation run), offline, and prints the result as JSON. The deployment
test reads it to check what SAM generates: roles, policies, permissions.

usage: sam_transform.py TEMPLATE
"""

import json
import os
import sys

import yaml
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The template names no AWS managed policy by name; an empty map makes any that SAM would
    attach by name fail loudly instead of being looked up in an account."""

    def load(self):
        return {}


class Loader(yaml.SafeLoader):
    """YAML as CloudFormation reads it: a date-like scalar (Version: 2012-10-17) stays a string."""


Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def main():
    # The translator asks boto for a region it never calls; a fixed one keeps this offline.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(sys.argv[1]) as f:
        template = yaml.load(f, Loader=Loader)
    # `sam package` would upload the local code and put its S3 location here; so does `sam validate`.
    for res in [template.get("Globals", {}).get("Function", {})] + list(template["Resources"].values()):
        props = res if "CodeUri" in res else res.get("Properties", {})
        if isinstance(props.get("CodeUri"), str) and not props["CodeUri"].startswith("s3://"):
            props["CodeUri"] = "s3://flashstock-package/code.zip"
    params = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    out = transform(template, params, NoManagedPolicies())
    json.dump(out, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
