#!/usr/bin/env python3
"""Writes manifests/ (the plain `kubectl apply -k manifests/` install) from the Helm chart.

Run by scripts/generate.sh. The chart is rendered with its default values as release
`datadump-operator` in namespace `datadump-system` with the Helm v4 Go SDK (helm-python-sdk);
the labels only Helm knows (chart, managed-by, version) are dropped; each object goes to the
file for its kind. The comment block at the top of each file is kept (people write it); the
YAML below it is replaced. kustomization.yaml's resources list is rebuilt from the files.
"""

from __future__ import annotations

import os
import sys

import helm_python
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "charts", "datadump-operator")
OUT = os.path.join(ROOT, "manifests")
RELEASE, NAMESPACE = "datadump-operator", "datadump-system"
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version")
FILES = {  # kind -> file, in the order kustomization.yaml lists them
    "ServiceAccount": "serviceaccount.yaml",
    "ClusterRole": "rbac.yaml",
    "ClusterRoleBinding": "rbac.yaml",
    "Role": "rbac.yaml",
    "RoleBinding": "rbac.yaml",
    "Deployment": "deployment.yaml",
    "Service": "service.yaml",
}


def header(path: str) -> str:
    """The leading comment lines of an existing file (kept as people wrote them)."""
    if not os.path.exists(path):
        return ""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line)
    return "".join(lines)


def strip_helm_labels(obj: dict) -> dict:
    for meta in (obj.get("metadata"), obj.get("spec", {}).get("template", {}).get("metadata")):
        labels = (meta or {}).get("labels")
        if labels:
            for key in HELM_ONLY_LABELS:
                labels.pop(key, None)
    return obj


def main() -> None:
    rendered = helm_python.Chart.load(CHART).render(None, name=RELEASE, namespace=NAMESPACE)
    by_file: dict[str, list[dict]] = {}
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            file = FILES.get(doc["kind"])
            if file is None:
                sys.exit(f"generate-manifests.py: no manifests/ file for kind {doc['kind']} ({path})")
            by_file.setdefault(file, []).append(strip_helm_labels(doc))
    for file, docs in by_file.items():
        target = os.path.join(OUT, file)
        body = "---\n".join(yaml.safe_dump(d, sort_keys=False, width=120) for d in docs)
        with open(target + ".tmp", "w", encoding="utf-8") as f:
            f.write(header(target) + body)
        os.replace(target + ".tmp", target)
    crds = sorted(f"crd/{n}" for n in os.listdir(os.path.join(OUT, "crd")) if n.endswith(".yaml"))
    files = list(dict.fromkeys(FILES[k] for k in FILES if FILES[k] in by_file))
    kustomization = os.path.join(OUT, "kustomization.yaml")
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["namespace.yaml", *crds, *files],
    }
    text = header(kustomization) + yaml.safe_dump(doc, sort_keys=False)
    with open(kustomization, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
