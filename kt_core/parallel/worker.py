"""The trial worker: `python -m kt_core.parallel.worker --coordinator HOST:PORT --output-dir DIR`.

One command for both launchers (a local process or a Kubernetes pod). What differs
per worker comes in its environment, set by the launcher:
  KT_COORDINATOR_TOKEN  the search's token (from a Secret on Kubernetes); required
  KT_COORDINATOR_CERT   the coordinator's certificate (PEM, from the same Secret): talk TLS
  KT_WORKER_ID          this worker's name (the pod name on Kubernetes)
  KT_WORKER_CPUS        cores to pin to (local launcher without GPUs)
  CUDA_VISIBLE_DEVICES  the GPU to use (local launcher with GPUs)
The search itself (config, examples, module) is read from the worker spec the
coordinator wrote into the output directory, and trials run in the same
SearchTuner a single-process search uses.

Exit codes: 0 the search is over; 2 bad invocation; 3 coordinator gone;
75 this worker's trial was given away (it was presumed dead): restart me.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from typing import List, Optional

EXIT_COORDINATOR_GONE = 3
EXIT_LEASE_LOST = 75


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kt_core.parallel.worker",
                                description="run trials handed out by a kt-pipelines coordinator")
    p.add_argument("--coordinator", required=True, help="HOST:PORT of the coordinator")
    p.add_argument("--output-dir", required=True, dest="output_dir",
                   help="the search's output directory (local or gs://)")
    p.add_argument("--heartbeat-s", type=float, default=5.0, dest="heartbeat_s")
    p.add_argument("--give-up-after-s", type=float, default=120.0, dest="give_up_after_s",
                   help="exit when the coordinator is unreachable this long")
    return p


def worker_command(python: str, address: str, output_dir: str) -> List[str]:
    """The command line both launchers run (only the interpreter's path may differ)."""
    return [python, "-m", "kt_core.parallel.worker", "--coordinator", address,
            "--output-dir", output_dir]


def main(argv: Optional[List[str]] = None) -> int:
    started = time.monotonic()
    args = build_parser().parse_args(argv)
    from kt_core.parallel import auth, devices

    token = os.environ.get(auth.TOKEN_ENV, "")
    if not token:
        print(f"worker: {auth.TOKEN_ENV} is not set (the coordinator's launcher sets it)",
              file=sys.stderr)
        return 2
    worker_id = os.environ.get(auth.WORKER_ID_ENV) or f"{socket.gethostname()}-{os.getpid()}"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"[{worker_id}] %(message)s")
    for noisy in ("absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)

    from kt_core.parallel.client import CoordinatorClient, Heartbeats, LeaseLost

    cert = os.environ.get(auth.CERT_ENV, "").encode() or None  # set: TLS (pods)
    client = CoordinatorClient(args.coordinator, token, worker_id, cert)
    Heartbeats(client, every_s=args.heartbeat_s, give_up_after_s=args.give_up_after_s,
               parent_pid=os.getppid()).start()
    log = logging.getLogger("kt_core")
    try:
        run_trials(client, args.output_dir, started)
    except LeaseLost as e:
        log.warning("worker %s: %s", worker_id, e)
        return EXIT_LEASE_LOST
    finally:
        client.close()
    log.info("worker %s: search over, exiting", worker_id)
    return 0


def run_trials(client, output_dir: str, started: float) -> None:
    """Loads the search from the worker spec and runs trials until the coordinator says stop."""
    import tensorflow as tf

    from kt_core.parallel import devices

    # Imports done on any free core; from here on (TensorFlow sizes its thread pools when
    # it first runs an op, from this affinity) only on the cores given to this worker.
    devices.pin_this_worker(os.environ.get(devices.CPUS_ENV, ""))
    gpus = devices.enable_memory_growth()
    log = logging.getLogger("kt_core")
    log.info("worker %s: CUDA_VISIBLE_DEVICES=%r, GPUs %s, CPU cores %s (%.1fs)", client.worker_id,
             os.environ.get("CUDA_VISIBLE_DEVICES"), gpus, sorted(os.sched_getaffinity(0)),
             time.monotonic() - started)

    from kt_core import search
    from kt_core.config import TuningConfig
    from kt_core.parallel.client import RemoteTrialLog, remote_oracle
    from kt_core.parallel.coordinator import WORKER_SPEC_FILE

    with tf.io.gfile.GFile(os.path.join(output_dir, WORKER_SPEC_FILE)) as f:
        spec = json.load(f)
    config = TuningConfig.from_dict(spec["config"])
    if config.seed is not None:
        import keras

        keras.utils.set_random_seed(config.seed)
    data, hypermodel = search.load_inputs(config, spec["examples"], spec["label_key"],
                                          spec["module_file"], spec["schema"])
    # Median stopping needs each epoch's answer; otherwise epochs may wait for the trial's end.
    trial_log = RemoteTrialLog(client, report_each_epoch=config.median_stopping is not None)
    oracle = remote_oracle(client, search.make_objective(config),
                           config.max_trials if config.tuner != "hyperband" else None,
                           unreported=trial_log.unreported)
    tuner = search.build_tuner(config, hypermodel, data, output_dir, oracle=oracle,
                               recorder=trial_log)
    tuner.trial_stopper = trial_log.should_stop
    log.info("worker %s: ready after %.1fs", client.worker_id, time.monotonic() - started)
    tuner.search(**search.search_arguments(config))


if __name__ == "__main__":
    code = main()
    # Everything this worker did is with the coordinator already: skip the seconds
    # TensorFlow and gRPC take to tear down.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
