#!/usr/bin/env python3
"""Helper for tests/it/chart.rs: the Python-only real parts behind one small CLI.

  lint CHART [--values FILE] [--kube-version V]   helm_python.lint (the Helm v4 Go SDK)
  render CHART [--values FILE] --name N --namespace NS
                                                  helm_python Chart.render + the chart's crds/
  schema CHART                                    Chart.validate_schema, values as JSON on stdin
  validate [--kube-version V]                     kubernetes-validate (strict) of a JSON list of
                                                  objects on stdin
  iam FILE...                                     moto's IAM policy grammar validator
  yaml                                            YAML documents on stdin as a JSON list (so
                                                  both sides of a comparison share one parser)

Every command prints one JSON document on stdout and exits 0; exit 3 means a tool is missing
(the message says which and how to install it), 2 a usage error. The Rust side decides what
passes.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

SETUP_HINT = "run scripts/setup.sh (it installs helm-python-sdk, kubernetes-validate and moto in .venv)"


def need(module: str) -> Any:
    """Imports a module or exits 3 with a clear message."""
    try:
        return __import__(module, fromlist=["*"])
    except ImportError as e:  # pragma: no cover - depends on the machine
        print(f"chart_check.py: cannot import {module} ({e}); {SETUP_HINT}", file=sys.stderr)
        sys.exit(3)


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    yaml = need("yaml")
    return [d for d in yaml.safe_load_all(text) if d]


def read_values(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    yaml = need("yaml")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def cmd_lint(args: argparse.Namespace) -> Any:
    helm = need("helm_python")
    return helm.lint(
        args.chart,
        read_values(args.values),
        strict=True,
        namespace="datadump-system",
        kube_version=args.kube_version,
    )


def cmd_render(args: argparse.Namespace) -> Any:
    helm = need("helm_python")
    chart = helm.Chart.load(args.chart)
    rendered = chart.render(read_values(args.values), name=args.name, namespace=args.namespace)
    objects, notes = [], None
    for crd in chart.crds:
        for doc in load_yaml_docs(crd["data"]):
            objects.append({"source": crd["name"], "object": doc})
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in load_yaml_docs(text):
            objects.append({"source": path, "object": doc})
    return {"objects": objects, "notes": notes}


def cmd_schema(args: argparse.Namespace) -> Any:
    helm = need("helm_python")
    chart = helm.Chart.load(args.chart)
    values = json.load(sys.stdin)
    try:
        chart.validate_schema(values)
    except helm.HelmValuesError as e:
        schema_error = str(e)
    else:
        schema_error = None
    # `helm template`/`install` validate too: a render with the same values must also refuse.
    try:
        chart.render(values, name="datadump-operator", namespace="datadump-system")
    except helm.HelmError as e:
        render_error = str(e)
    else:
        render_error = None
    return {"schema_error": schema_error, "render_error": render_error}


# kubernetes-validate ships schemas for the built-in kinds only. For the Prometheus Operator's
# ServiceMonitor we check the fields the chart writes against their monitoring.coreos.com/v1
# definitions (names and types as in the prometheus-operator CRD), unknown fields refused.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {
                                "type": "string",
                                "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
                            },
                        },
                    },
                },
            },
        },
    },
}


def cmd_validate(args: argparse.Namespace) -> Any:
    kv = need("kubernetes_validate")
    jsonschema = need("jsonschema")
    results = []
    for obj in json.load(sys.stdin):
        name = f'{obj.get("kind")}/{obj.get("metadata", {}).get("name")}'
        if obj.get("apiVersion") == "monitoring.coreos.com/v1" and obj.get("kind") == "ServiceMonitor":
            errors = [e.message for e in jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).iter_errors(obj)]
            results.append({"object": name, "validator": "servicemonitor-subset", "error": "; ".join(errors) or None})
            continue
        try:
            kv.validate(obj, args.kube_version, strict=True)
            error = None
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            error = f"{path}: {e.message}"
        except Exception as e:  # no schema for the kind, bad version: a failure, never a skip
            error = f"{type(e).__name__}: {e}"
        results.append({"object": name, "validator": f"kubernetes-validate {args.kube_version} strict", "error": error})
    return results


def cmd_iam(args: argparse.Namespace) -> Any:
    pv = need("moto.iam.policy_validation")
    results = []
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        trust = "trust" in path.rsplit("/", 1)[-1]
        validator = pv.IAMTrustPolicyDocumentValidator if trust else pv.IAMPolicyDocumentValidator
        try:
            validator(text).validate()
            error = None
        except Exception as e:
            error = f"{type(e).__name__}: {getattr(e, 'message', e)}"
        results.append({"file": path, "kind": "trust" if trust else "identity", "error": error})
    return results


def cmd_yaml(_args: argparse.Namespace) -> Any:
    return load_yaml_docs(sys.stdin.read())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("lint")
    s.add_argument("chart")
    s.add_argument("--values")
    s.add_argument("--kube-version", default="v1.32.0")
    s.set_defaults(fn=cmd_lint)
    s = sub.add_parser("render")
    s.add_argument("chart")
    s.add_argument("--values")
    s.add_argument("--name", required=True)
    s.add_argument("--namespace", required=True)
    s.set_defaults(fn=cmd_render)
    s = sub.add_parser("schema")
    s.add_argument("chart")
    s.set_defaults(fn=cmd_schema)
    s = sub.add_parser("validate")
    s.add_argument("--kube-version", default="1.32")
    s.set_defaults(fn=cmd_validate)
    s = sub.add_parser("iam")
    s.add_argument("files", nargs="+")
    s.set_defaults(fn=cmd_iam)
    s = sub.add_parser("yaml")
    s.set_defaults(fn=cmd_yaml)
    args = p.parse_args()
    json.dump(args.fn(args), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
