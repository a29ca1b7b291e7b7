"""Trial workers as the pods of one Kubernetes Job, created by the Tuner step itself.

The coordinator (the Tuner step's pod) creates, in its own namespace:
* a Secret holding the search's token and the coordinator's TLS certificate
  (workers read them as KT_COORDINATOR_TOKEN and KT_COORDINATOR_CERT; the key stays
  in the coordinator's memory, and calls go over TLS);
* an Indexed Job of N pods running the worker command (worker.py), with the GPU
  request, node selector and tolerations of the GPU node pool and the same image;
both owned by the Tuner pod (ownerReferences), so Kubernetes deletes them with
the step; the coordinator deletes them itself when the search ends, and, when its
container restarts in the same pod, deletes the ones its earlier run left before
creating new ones. Workers reach the coordinator at its pod IP. API calls made,
all allowed by manifests/base/rbac.yaml: pods get/list, jobs list/create/get/delete,
secrets create/delete.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from typing import Any, Dict, List, Optional, Tuple

from kt_core.config import ConfigError
from kt_core.parallel import auth
from kt_core.parallel.worker import worker_command

log = logging.getLogger("kt_core")

SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
SEARCH_LABEL = "kt-pipelines/search"
TOKEN_KEY = "token"
CERT_KEY = "cert.pem"
# Added by Kubernetes to every pod; not part of the node pool's scheduling.
_DEFAULT_TOLERATION_KEYS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


def owner_reference(pod: Dict[str, Any]) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"]}


def labels_for(search_id: str) -> Dict[str, str]:
    return {"app.kubernetes.io/part-of": "kt-pipelines",
            "app.kubernetes.io/component": "tuner-worker", SEARCH_LABEL: search_id}


def secret_name_for(search_id: str) -> str:
    return f"kt-coordinator-{search_id}"


def token_secret(name: str, namespace: str, token: str, owner: Dict[str, Any],
                 labels: Dict[str, str], cert_pem: Optional[bytes] = None) -> Dict[str, Any]:
    """The token and the coordinator's certificate (public; its key never leaves the
    coordinator's memory)."""
    data = {TOKEN_KEY: token}
    if cert_pem:
        data[CERT_KEY] = cert_pem.decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "ownerReferences": [owner]},
            "stringData": data}


def worker_job(name: str, namespace: str, *, num_workers: int, image: str, command: List[str],
               secret_name: str, owner: Dict[str, Any], labels: Dict[str, str], gpus: int = 1,
               gpu_resource: str = "nvidia.com/gpu", cpu=None, memory=None,
               node_selector: Optional[Dict[str, str]] = None,
               tolerations: Optional[List[Dict[str, Any]]] = None,
               service_account: Optional[str] = None,
               image_pull_policy: Optional[str] = None, tls: bool = True) -> Dict[str, Any]:
    """The Indexed Job whose pods are the trial workers."""
    env = [
        {"name": auth.TOKEN_ENV,
         "valueFrom": {"secretKeyRef": {"name": secret_name, "key": TOKEN_KEY}}},
        *([{"name": auth.CERT_ENV,
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": CERT_KEY}}}] if tls else []),
        {"name": auth.WORKER_ID_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TF_FORCE_GPU_ALLOW_GROWTH", "value": "true"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    requests, limits = {}, {}
    if gpus:
        limits[gpu_resource] = str(gpus)
    if cpu is not None:
        requests["cpu"] = str(cpu)
    if memory is not None:
        requests["memory"] = limits["memory"] = str(memory)
    container = {"name": "worker", "image": image, "command": command, "env": env}
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    if requests or limits:
        container["resources"] = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    pod_spec = {"restartPolicy": "Never", "containers": [container],
                # Workers never call the Kubernetes API: no token in their pods.
                "automountServiceAccountToken": False}
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod_spec["tolerations"] = list(tolerations)
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "ownerReferences": [owner]},
        "spec": {
            "completionMode": "Indexed", "completions": num_workers, "parallelism": num_workers,
            # A crashed or preempted worker pod is replaced, within reason.
            "backoffLimit": 2 * num_workers,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


class KubernetesLauncher:
    name = "kubernetes"
    bind_host = "0.0.0.0"
    tls = True  # calls cross the pod network

    def __init__(self, num_workers: int, worker_pod: Optional[Dict[str, Any]] = None, *,
                 namespace: str, pod_name: str, batch_api, core_api,
                 search_id: Optional[str] = None, poll_every_s: float = 5.0):
        self.num_workers = num_workers
        self.worker_pod = dict(worker_pod or {})
        self.namespace = namespace
        self.pod_name = pod_name
        self.batch = batch_api
        self.core = core_api
        self.search_id = search_id or secrets.token_hex(4)
        self.job_name = f"kt-workers-{self.search_id}"
        self.secret_name = secret_name_for(self.search_id)
        self.poll_every_s = poll_every_s
        self._own_pod: Optional[Dict[str, Any]] = None
        self._seen: Dict[str, str] = {}  # pod name -> last phase
        self._reported = set()
        self._warned_pending = set()
        self._last_poll = 0.0
        self._failure: Optional[str] = None
        self.created: List[Tuple[str, str]] = []  # (kind, name)

    @classmethod
    def in_cluster(cls, num_workers: int, worker_pod: Dict[str, Any]) -> "KubernetesLauncher":
        """Inside the Tuner step's pod, with its ServiceAccount (kt-tuner)."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
            with open(SA_NAMESPACE_FILE) as f:
                namespace = f.read().strip()
        except Exception as e:
            raise ConfigError(f"launcher: 'kubernetes' needs to run in a pod with a service "
                              f"account ({type(e).__name__}: {e}); use launcher 'local' elsewhere "
                              f"(e.g. on Vertex AI)") from None
        return cls(num_workers, worker_pod, namespace=namespace,
                   pod_name=os.environ.get("HOSTNAME") or socket.gethostname(),
                   batch_api=client.BatchV1Api(), core_api=client.CoreV1Api())

    # -- what the coordinator asks -------------------------------------------------

    def own_pod(self) -> Dict[str, Any]:
        if self._own_pod is None:
            pod = self.core.read_namespaced_pod(self.pod_name, self.namespace)
            self._own_pod = _plain(pod)
        return self._own_pod

    def advertise_host(self) -> str:
        ip = (self.own_pod().get("status") or {}).get("podIP")
        if not ip:
            raise RuntimeError(f"pod {self.pod_name} has no IP yet")
        return ip

    def share_module_file(self, module_file: Optional[str], output_dir: str) -> Optional[str]:
        """Worker pods see only shared storage: the output directory must be there, and a
        module file local to this pod is copied next to the results."""
        if "://" not in output_dir:
            raise ConfigError(f"launcher: 'kubernetes' worker pods cannot read the local output "
                              f"directory {output_dir}; use a pipeline root on shared storage "
                              f"(gs://, s3://) or launcher 'local'")
        if module_file and "://" not in module_file and os.path.isfile(module_file):
            import tensorflow as tf

            shared = os.path.join(output_dir, "worker_module", os.path.basename(module_file))
            tf.io.gfile.makedirs(os.path.dirname(shared))
            tf.io.gfile.copy(module_file, shared, overwrite=True)
            return shared
        return module_file

    def objects(self, address: str, token: str, output_dir: str,
                cert_pem: Optional[bytes] = None):
        """(Secret, Job) as they are sent to the API server."""
        pod = self.own_pod()
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or [{}]
        main = next((c for c in containers if c.get("name") == "main"), containers[0])
        wp = self.worker_pod
        owner, labels = owner_reference(pod), labels_for(self.search_id)
        tolerations = wp.get("tolerations")
        if tolerations is None:
            tolerations = [t for t in spec.get("tolerations") or []
                           if t.get("key") not in _DEFAULT_TOLERATION_KEYS]
        secret = token_secret(self.secret_name, self.namespace, token, owner, labels, cert_pem)
        job = worker_job(
            self.job_name, self.namespace, num_workers=self.num_workers,
            image=wp.get("image") or main.get("image"),
            command=worker_command("python", address, output_dir),
            secret_name=self.secret_name, owner=owner, labels=labels,
            gpus=wp.get("gpus", 1), gpu_resource=wp.get("gpu_resource", "nvidia.com/gpu"),
            cpu=wp.get("cpu"), memory=wp.get("memory"),
            node_selector=wp.get("node_selector", spec.get("nodeSelector")),
            tolerations=tolerations,
            service_account=wp.get("service_account", spec.get("serviceAccountName")),
            image_pull_policy=main.get("imagePullPolicy"), tls=bool(cert_pem))
        return secret, job

    def start(self, address: str, token: str, output_dir: str,
              cert_pem: Optional[bytes] = None) -> None:
        self.remove_leftovers()
        secret, job = self.objects(address, token, output_dir, cert_pem)
        self.core.create_namespaced_secret(self.namespace, secret)
        self.created.append(("Secret", self.secret_name))
        self.batch.create_namespaced_job(self.namespace, job)
        self.created.append(("Job", self.job_name))
        log.info("created Job %s/%s: %d worker pod(s), image %s", self.namespace, self.job_name,
                 self.num_workers, job["spec"]["template"]["spec"]["containers"][0]["image"])

    def remove_leftovers(self) -> None:
        """Deletes worker Jobs (and their Secrets) that an earlier run of this same pod
        created: when the Tuner container restarts (OOM, a crash) the pod, and so its
        owned Jobs, live on; their workers would go on training against a coordinator
        that is gone, writing checkpoints of trials the resumed search runs again."""
        uid = (self.own_pod().get("metadata") or {}).get("uid")
        selector = ",".join(f"{k}={v}" for k, v in labels_for("").items() if k != SEARCH_LABEL)
        jobs = _plain(self.batch.list_namespaced_job(self.namespace, label_selector=selector))
        for job in jobs.get("items") or []:
            meta = job.get("metadata") or {}
            if not any(o.get("uid") == uid for o in meta.get("ownerReferences") or []):
                continue  # another search's
            search_id = (meta.get("labels") or {}).get(SEARCH_LABEL, "")
            log.warning("deleting worker Job %s/%s left by an earlier run of this step "
                        "(the container restarted)", self.namespace, meta.get("name"))
            self._delete("Job", meta.get("name"))
            self._delete("Secret", secret_name_for(search_id))

    def poll(self) -> List[Tuple[str, str]]:
        """Worker pods that failed or vanished (evicted, preempted node) since the last poll."""
        now = time.monotonic()
        if now - self._last_poll < self.poll_every_s:
            return []
        self._last_poll = now
        pods = _plain(self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{SEARCH_LABEL}={self.search_id}")).get("items") or []
        ended, current = [], {}
        for pod in pods:
            name = pod["metadata"]["name"]
            status = pod.get("status") or {}
            phase = status.get("phase", "Unknown")
            current[name] = phase
            if phase == "Failed" and name not in self._reported:
                self._reported.add(name)
                ended.append((name, f"pod failed: {_why(status)}"))
            elif phase == "Pending" and name not in self._warned_pending:
                for cond in status.get("conditions") or []:
                    if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                        self._warned_pending.add(name)
                        log.warning("worker pod %s cannot be scheduled yet: %s", name,
                                    cond.get("message") or cond.get("reason"))
        for name, phase in self._seen.items():
            if name not in current and phase != "Succeeded" and name not in self._reported:
                self._reported.add(name)
                ended.append((name, "pod deleted (evicted or node gone)"))
        self._seen = current
        job = _plain(self.batch.read_namespaced_job(self.job_name, self.namespace))
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Failed" and cond.get("status") == "True":
                self._failure = (f"worker Job {self.namespace}/{self.job_name} failed: "
                                 f"{cond.get('reason')}: {cond.get('message')}; see its pods' logs")
        return ended

    def failure(self) -> Optional[str]:
        return self._failure

    def stop(self, grace_s: float = 0.0, connected=()) -> None:
        """Deletes the Job (and with it its pods) and the Secret."""
        for kind, name in reversed(self.created):
            self._delete(kind, name)
        self.created = []

    def _delete(self, kind: str, name: str) -> None:
        """A Job (its pods go with it) or a Secret; already gone is fine."""
        from kubernetes.client.exceptions import ApiException

        try:
            if kind == "Job":
                self.batch.delete_namespaced_job(name, self.namespace,
                                                 propagation_policy="Background")
            else:
                self.core.delete_namespaced_secret(name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                log.warning("could not delete %s %s: %s %s", kind, name, e.status, e.reason)


def _plain(obj) -> Dict[str, Any]:
    """A kubernetes client model as the API's JSON (camelCase keys)."""
    if isinstance(obj, dict):
        return obj
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def _why(status: Dict[str, Any]) -> str:
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term:
            return f"{term.get('reason') or 'terminated'} (exit code {term.get('exitCode')})"
    return status.get("reason") or status.get("message") or "unknown"
