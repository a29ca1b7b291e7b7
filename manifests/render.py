"""Render this folder's kustomizations without kubectl or kustomize.

Only what these manifests use is supported, and anything else is refused rather than
silently ignored (tests/test_manifests.py also compares the output with
`kubectl kustomize` wherever kubectl is installed):

  * `resources`: YAML files (one or more documents) and directories holding a
    kustomization.yaml (bases), rendered recursively;
  * `namespace`: set on every namespaced object, as the name of Namespace objects, and on
    RoleBinding subjects of kind ServiceAccount that name no namespace (as kustomize does);
  * `patches` with a `path` to a strategic-merge patch that names its target by
    apiVersion, kind and name (namespace too, optionally). Maps merge key by key and a
    null value deletes the key; a patch holding a list is refused, because real strategic
    merge merges some lists by key (containers, tolerations, ...) and this helper does not.

Usage: python manifests/render.py manifests/overlays/gke-gpu   (prints multi-document YAML)
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any, Dict, List

import yaml

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "patches"}
# Cluster-scoped kinds these manifests may contain: `namespace` is not set on them.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


class RenderError(Exception):
    pass


def _load_docs(path: str) -> List[Dict[str, Any]]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        if not isinstance(d, dict) or not {"apiVersion", "kind", "metadata"} <= d.keys():
            raise RenderError(f"{path}: not a Kubernetes object: {d!r:.80}")
    return docs


def _merge(target: Dict[str, Any], patch: Dict[str, Any], where: str) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _merge(target[key], value, f"{where}.{key}")
        elif isinstance(value, list):
            raise RenderError(f"{where}.{key}: list patches are not supported by this renderer")
        else:
            target[key] = value


def _apply_patch(objects: List[Dict[str, Any]], patch: Dict[str, Any], where: str) -> None:
    meta = patch["metadata"]
    matches = [o for o in objects
               if o["apiVersion"] == patch["apiVersion"] and o["kind"] == patch["kind"]
               and o["metadata"].get("name") == meta.get("name")
               and ("namespace" not in meta
                    or o["metadata"].get("namespace") == meta["namespace"])]
    if len(matches) != 1:
        raise RenderError(f"{where}: patch for {patch['kind']}/{meta.get('name')} matches "
                          f"{len(matches)} objects, expected 1")
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
    _merge(matches[0], body, where)


def render(directory: str) -> List[Dict[str, Any]]:
    """The objects `kubectl kustomize DIRECTORY` would output (for the supported subset)."""
    kpath = os.path.join(directory, "kustomization.yaml")
    with open(kpath) as f:
        kust = yaml.safe_load(f) or {}
    unknown = set(kust) - KUSTOMIZATION_KEYS
    if unknown:
        raise RenderError(f"{kpath}: unsupported fields {sorted(unknown)}")
    if kust.get("kind") != "Kustomization":
        raise RenderError(f"{kpath}: kind must be Kustomization")

    objects: List[Dict[str, Any]] = []
    for res in kust.get("resources", []):
        path = os.path.normpath(os.path.join(directory, res))
        objects.extend(render(path) if os.path.isdir(path) else _load_docs(path))

    for entry in kust.get("patches", []):
        if set(entry) != {"path"}:
            raise RenderError(f"{kpath}: only `patches: - path: FILE` is supported, got {entry}")
        ppath = os.path.join(directory, entry["path"])
        for patch in _load_docs(ppath):
            _apply_patch(objects, patch, ppath)

    if "namespace" in kust:
        for obj in objects:
            if obj["kind"] == "Namespace":
                obj["metadata"]["name"] = kust["namespace"]
            elif obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kust["namespace"]
            if obj["kind"] == "RoleBinding":
                for subject in obj.get("subjects", []):
                    if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
                        subject["namespace"] = kust["namespace"]

    keys = [(o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in objects]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise RenderError(f"{kpath}: duplicate objects {sorted(map(str, dupes))}")
    return copy.deepcopy(objects)


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print("usage: render.py KUSTOMIZATION_DIR", file=sys.stderr)
        return 2
    yaml.safe_dump_all(render(argv[0]), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
