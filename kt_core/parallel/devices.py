"""Which GPU and which CPU cores each local worker gets.

Placement is expressed as each worker's environment, so a worker needs no
flags for it: `CUDA_VISIBLE_DEVICES` (one GPU, or none) and `KT_WORKER_CPUS` (the
cores the worker pins itself to before TensorFlow starts its thread pools, which
size themselves from that affinity). With GPUs, workers are spread over them,
`trials_per_gpu` to a GPU, with memory growth on so they can share one; without,
the machine's cores are split between workers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence

from kt_core.config import ConfigError

log = logging.getLogger("kt_core")

CPUS_ENV = "KT_WORKER_CPUS"


@dataclasses.dataclass
class Placement:
    gpu: Optional[str]   # a CUDA device id, or None for a CPU worker
    cpus: List[int]

    def env(self) -> Dict[str, str]:
        return {
            "CUDA_VISIBLE_DEVICES": self.gpu if self.gpu is not None else "",
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
            CPUS_ENV: ",".join(str(c) for c in self.cpus),
        }


def place_workers(num_workers: int, gpus: Sequence[str], trials_per_gpu: int,
                  cpus: Sequence[int]) -> List[Placement]:
    """Worker i gets GPU i // trials_per_gpu (if any GPU) and a slice of the cores."""
    if num_workers < 1:
        raise ValueError("num_workers must be >= 1")
    cpus = sorted(cpus)
    if gpus and num_workers > len(gpus) * trials_per_gpu:
        raise ConfigError(
            f"num_parallel_trials: {num_workers} workers do not fit on {len(gpus)} GPU(s) with "
            f"trials_per_gpu {trials_per_gpu}; lower num_parallel_trials or raise trials_per_gpu")
    return [Placement(gpu=gpus[i // trials_per_gpu] if gpus else None,
                      cpus=_cpu_share(i, num_workers, cpus))
            for i in range(num_workers)]


def _cpu_share(i: int, n: int, cpus: List[int]) -> List[int]:
    if n >= len(cpus):  # more workers than cores: share cores round-robin
        return [cpus[i % len(cpus)]]
    base, extra = divmod(len(cpus), n)
    start = i * base + min(i, extra)
    return cpus[start:start + base + (1 if i < extra else 0)]


def visible_gpus() -> List[str]:
    """CUDA ids of the GPUs TensorFlow can see here, as a child's CUDA_VISIBLE_DEVICES names them."""
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    inherited = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if inherited and len(inherited) >= count:
        return inherited[:count]
    return [str(i) for i in range(count)]


def available_cpus() -> List[int]:
    return sorted(os.sched_getaffinity(0))


def keep_gpus_for_workers() -> None:
    """The coordinator trains nothing: it must not take GPU memory the workers need."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as e:  # TensorFlow already initialized its devices in this process
        log.warning("coordinator: could not hide GPUs from itself (%s); workers may find "
                    "less GPU memory", e)


def pin_this_worker(cpus_env: str) -> None:
    """In a worker, before TensorFlow runs its first op: stay on the cores the launcher
    gave us (threads started later inherit this; TensorFlow's pools size themselves by it)."""
    if cpus_env:
        os.sched_setaffinity(0, {int(c) for c in cpus_env.split(",")})


def enable_memory_growth() -> List[str]:
    """GPU memory growth on, so workers sharing a GPU do not each grab all of it."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return [g.name for g in gpus]
