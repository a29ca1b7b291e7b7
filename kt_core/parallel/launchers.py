"""Starting, watching and stopping the trial workers.

A launcher runs `num_workers` copies of the one worker command (worker.py) and
tells the coordinator which workers died (`poll`), so their trials are requeued at
once rather than when their lease runs out, and when no worker can run any more
(`failure`). `local` runs processes here (one per GPU, or the CPU cores split);
`kubernetes` (kubernetes_launcher.py) runs the pods of one Indexed Job.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from typing import List, Optional, Sequence, Tuple

from kt_core.parallel import auth, devices
from kt_core.parallel.worker import worker_command

log = logging.getLogger("kt_core")


def from_config(config):
    if config.launcher == "kubernetes":
        from kt_core.parallel.kubernetes_launcher import KubernetesLauncher

        return KubernetesLauncher.in_cluster(config.num_parallel_trials, config.worker_pod)
    return LocalLauncher(config.num_parallel_trials, trials_per_gpu=config.trials_per_gpu)


class LocalLauncher:
    """Worker processes next to the coordinator; a worker that dies is replaced
    (at most `max_restarts` times in all, like a Job's backoffLimit)."""

    name = "local"
    bind_host = "127.0.0.1"

    def __init__(self, num_workers: int, gpus: Optional[Sequence[str]] = None,
                 trials_per_gpu: int = 1, cpus: Optional[Sequence[int]] = None,
                 max_restarts: Optional[int] = None, log_dir: Optional[str] = None,
                 python: str = sys.executable, tls: bool = False):
        self.num_workers = num_workers
        self.tls = tls  # loopback only: the token suffices; TLS on request
        self.gpus = None if gpus is None else list(gpus)
        self.trials_per_gpu = trials_per_gpu
        self.cpus = None if cpus is None else list(cpus)
        self.max_restarts = 2 * num_workers if max_restarts is None else max_restarts
        self.log_dir = log_dir
        self.python = python
        self.placements: List[devices.Placement] = []
        self.procs = {}  # worker id -> Popen, current and past
        self._slots = []  # per slot: the current worker id
        self._generation = []  # per slot: how many workers it has started
        self._restarts = 0
        self._stopping = False
        self._failure = None
        self.command: List[str] = []

    def advertise_host(self) -> str:
        return "127.0.0.1"

    def share_module_file(self, module_file, output_dir):
        return module_file  # same machine: the same path works

    def start(self, address: str, token: str, output_dir: str,
              cert_pem: Optional[bytes] = None) -> None:
        gpus = devices.visible_gpus() if self.gpus is None else self.gpus
        cpus = devices.available_cpus() if self.cpus is None else self.cpus
        self.placements = devices.place_workers(self.num_workers, gpus, self.trials_per_gpu, cpus)
        self.command = worker_command(self.python, address, output_dir)
        self._token = token
        self._cert = cert_pem.decode() if cert_pem else None
        for slot, placement in enumerate(self.placements):
            log.info("worker local-%d: %s", slot,
                     f"GPU {placement.gpu}" if placement.gpu is not None else
                     f"CPU cores {','.join(map(str, placement.cpus))}")
            self._slots.append(None)
            self._generation.append(0)
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        generation = self._generation[slot]
        self._generation[slot] += 1
        worker_id = f"local-{slot}" + (f"-r{generation}" if generation else "")
        env = dict(os.environ)
        env.update(self.placements[slot].env())
        env[auth.TOKEN_ENV] = self._token
        if self._cert:
            env[auth.CERT_ENV] = self._cert
        env[auth.WORKER_ID_ENV] = worker_id
        env.setdefault("PYTHONUNBUFFERED", "1")
        out = 2  # keras-tuner prints on stdout: keep the coordinator's stdout for its caller
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f"{worker_id}.log"), "ab")
        self.procs[worker_id] = subprocess.Popen(self.command, env=env, stdout=out,
                                                 stderr=subprocess.STDOUT if self.log_dir else None)
        if self.log_dir:
            out.close()
        self._slots[slot] = worker_id

    def pids(self):
        """worker id -> pid of the workers running now."""
        return {w: self.procs[w].pid for w in self._slots if w and self.procs[w].poll() is None}

    def poll(self) -> List[Tuple[str, str]]:
        """Workers that exited since the last poll, replacing the ones that crashed."""
        ended = []
        for slot, worker_id in enumerate(self._slots):
            if worker_id is None:
                continue
            code = self.procs[worker_id].poll()
            if code is None:
                continue
            self._slots[slot] = None
            why = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
            ended.append((worker_id, why))
            if code != 0 and not self._stopping:
                if self._restarts < self.max_restarts:
                    self._restarts += 1
                    log.warning("worker %s ended (%s); starting a replacement", worker_id, why)
                    self._spawn(slot)
                else:
                    log.warning("worker %s ended (%s); no restarts left", worker_id, why)
        if not any(self._slots) and not self._stopping:
            self._failure = (f"all {self.num_workers} local workers have exited and "
                             f"{self._restarts} restart(s) were used; see the workers' log lines above")
        return ended

    def failure(self) -> Optional[str]:
        return self._failure

    def stop(self, grace_s: float = 5.0, connected=()) -> None:
        """Workers leave on their own once told the search is over (those in `connected`
        have been); the rest, e.g. a replacement still starting, are ended now."""
        self._stopping = True
        deadline = time.monotonic() + grace_s
        for worker_id, proc in self.procs.items():
            if proc.poll() is None:
                if worker_id in connected:
                    try:
                        proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
                        continue
                    except subprocess.TimeoutExpired:
                        pass
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
