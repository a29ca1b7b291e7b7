"""A worker's view of the coordinator: an Oracle and a trial log that live remotely.

`RemoteOracle` is a keras_tuner `Oracle` whose methods are calls to the coordinator
(keras-tuner's own OracleClient does the same, but is configured through
environment variables read deep inside BaseTuner, sends no token and has no
leases). `RemoteTrialLog` is a `TrialRecorder` that sends each epoch to the
coordinator, the one writer of tuner_results.json, and hears back whether the
trial should stop (median stopping) or is no longer this worker's.
Both are handed to the same `SearchTuner` a single-process search runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Optional

import grpc

from kt_core import results as results_lib
from kt_core.parallel import auth, wire

log = logging.getLogger("kt_core")

# Coordinator calls are retried by gRPC while it is unreachable (wait_for_ready);
# a worker that cannot reach it for this long gives up (see Heartbeats).
RPC_TIMEOUT_S = 600.0


class CoordinatorClient:
    def __init__(self, address: str, token: str, worker_id: str, cert_pem: Optional[bytes] = None):
        from keras_tuner.src import protos

        self.address = address
        self.worker_id = worker_id
        self.channel = auth.authenticated_channel(address, token, worker_id, cert_pem)
        self.oracle_stub = protos.get_service_grpc().OracleStub(self.channel)
        self._calls = {name: wire.stub(self.channel, name)
                       for name in (wire.HEARTBEAT, wire.REPORT_EPOCH, wire.TRIAL_MESSAGE)}

    def call(self, name: str, message: dict, timeout: float = RPC_TIMEOUT_S) -> dict:
        return self._calls[name](message, timeout=timeout, wait_for_ready=True)

    def close(self) -> None:
        self.channel.close()


class LeaseLost(Exception):
    """The coordinator gave this worker's trial to another worker (we were presumed dead)."""


def _lease_lost_or_raise(e: grpc.RpcError):
    if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
        from keras_tuner import errors

        class _Fatal(LeaseLost, errors.FatalError):  # keras-tuner re-raises FatalErrors
            pass

        raise _Fatal(e.details()) from None
    raise e


def remote_oracle(client: CoordinatorClient, objective, max_trials,
                  unreported: Callable[[str], list] = lambda trial_id: []):
    """A keras_tuner Oracle whose every decision is made by the coordinator.

    Between two trials a worker makes one call: keras-tuner's worker asks
    `get_trial` and `update_trial` for its running trial, then `end_trial`, then
    `create_trial` (four round trips). Here the running trial is kept locally:
    `get_trial` and `update_trial` act on it with the Oracle's own bookkeeping,
    and `end_trial` sends it, metrics included, in one call that also brings back
    the next trial (`wire.END_TRIAL_AND_NEXT`); `create_trial` hands that out.
    `unreported(trial_id)`: the trial's epochs to send with its end (RemoteTrialLog)."""
    from keras_tuner import Oracle
    from keras_tuner.src import protos
    from keras_tuner.src.engine import hyperparameters as hp_module
    from keras_tuner.src.engine import trial as trial_module

    service = protos.get_service()
    stub = client.oracle_stub
    end_trial_and_next = wire.stub(client.channel, wire.END_TRIAL_AND_NEXT)

    def call(method, request):
        try:
            return method(request, timeout=RPC_TIMEOUT_S, wait_for_ready=True)
        except grpc.RpcError as e:
            _lease_lost_or_raise(e)

    class RemoteOracle(Oracle):
        _next = None  # the trial the coordinator sent back with the last end_trial

        def get_space(self):
            response = call(stub.GetSpace, service.GetSpaceRequest())
            return hp_module.HyperParameters.from_proto(response.hyperparameters)

        def update_space(self, hyperparameters):
            call(stub.UpdateSpace,
                 service.UpdateSpaceRequest(hyperparameters=hyperparameters.to_proto()))

        def create_trial(self, tuner_id):
            if self._next is not None:
                trial, self._next = self._next, None
            else:
                response = call(stub.CreateTrial, service.CreateTrialRequest(tuner_id=client.worker_id))
                trial = trial_module.Trial.from_proto(response.trial)
            # The trial being run, what get_trial/update_trial/on_trial_end look up.
            self.trials = {trial.trial_id: trial} if trial.status == trial_module.TrialStatus.RUNNING else {}
            return trial

        def update_trial(self, trial_id, metrics, step=0):
            if trial_id not in self.trials:
                response = call(stub.UpdateTrial, service.UpdateTrialRequest(
                    trial_id=trial_id, metrics=metrics, step=step))
                return trial_module.Trial.from_proto(response.trial)
            # Checks the objective is there and records the metrics, as the coordinator's
            # oracle will when the trial ends.
            return super().update_trial(trial_id, metrics, step=step)

        def _save_trial(self, trial):
            pass  # the coordinator writes trial.json

        def end_trial(self, trial):
            if trial.message:  # the Trial proto has no message field
                try:
                    client.call(wire.TRIAL_MESSAGE, {"trial_id": trial.trial_id,
                                                     "message": trial.message})
                except grpc.RpcError as e:
                    _lease_lost_or_raise(e)
            response = call(end_trial_and_next, wire.EndAndNext(
                service.EndTrialRequest(trial=trial.to_proto()), unreported(trial.trial_id)))
            self._next = trial_module.Trial.from_proto(response.trial)

        def get_trial(self, trial_id):
            if trial_id in self.trials:
                return self.trials[trial_id]
            response = call(stub.GetTrial, service.GetTrialRequest(trial_id=trial_id))
            return trial_module.Trial.from_proto(response.trial)

        def get_best_trials(self, num_trials=1):
            response = call(stub.GetBestTrials, service.GetBestTrialsRequest(num_trials=num_trials))
            return [trial_module.Trial.from_proto(t) for t in response.trials]

        def remaining_trials(self):
            return None

        # The coordinator owns oracle.json; a worker neither writes nor reads it.
        def save(self):
            pass

        def reload(self):
            pass

    return RemoteOracle(objective=objective, max_trials=max_trials)


class RemoteTrialLog(results_lib.TrialRecorder):
    """Keeps the local bookkeeping a TrialRecorder keeps, but writes nothing: epochs go
    to the coordinator, which records them and says whether to go on.

    With `report_each_epoch` (median stopping: the answer decides whether the trial goes
    on) every epoch is sent as it ends. Otherwise an epoch is sent once `report_every_s`
    passed since the last send, and the rest go with the trial's end (`unreported`): the
    coordinator still sees a long trial's progress, and a short trial costs one call."""

    def __init__(self, client: CoordinatorClient, report_each_epoch: bool = True,
                 report_every_s: float = 1.0):
        super().__init__(results_path="", resume=False)
        self.client = client
        self.report_each_epoch = report_each_epoch
        self.report_every_s = report_every_s
        self._stop = set()
        self._sent = {}  # trial_id -> how many of its recorded epochs were sent
        self._sent_at = {}  # trial_id -> when its epochs were last sent (or it began)

    def trial_begin(self, trial_id: str) -> None:
        super().trial_begin(trial_id)
        self._stop.discard(trial_id)
        self._sent[trial_id] = 0
        self._sent_at[trial_id] = time.monotonic()

    def epoch_end(self, trial_id: str, epoch: int, logs=None) -> None:
        super().epoch_end(trial_id, epoch, logs)
        if (self.report_each_epoch
                or time.monotonic() - self._sent_at.get(trial_id, 0.0) >= self.report_every_s):
            self._send(trial_id)

    def _unsent(self, trial_id: str) -> list:
        """The epochs recorded here (TrialRecorder's, per execution) not sent yet, as
        ReportEpoch and EndTrialAndNext carry them; marks them sent."""
        epochs = [{"execution": execution, "epoch": int(logs["epoch"]),
                   "logs": {k: v for k, v in logs.items() if k != "epoch"}}
                  for execution, recorded in enumerate(self._epochs.get(trial_id, []))
                  for logs in recorded]
        sent, self._sent[trial_id] = self._sent.get(trial_id, 0), len(epochs)
        return epochs[sent:]

    def _send(self, trial_id: str) -> None:
        self._sent_at[trial_id] = time.monotonic()
        reply = self.client.call(wire.REPORT_EPOCH, {"trial_id": trial_id,
                                                     "epochs": self._unsent(trial_id)})
        if not reply.get("leased", True):
            log.warning("worker %s: trial %s is no longer ours; stopping it", self.client.worker_id,
                        trial_id)
        if reply.get("stop"):
            self._stop.add(trial_id)

    def unreported(self, trial_id: str) -> list:
        """The trial's epochs not sent yet, for the call that ends it."""
        self._sent_at.pop(trial_id, None)
        return self._unsent(trial_id)

    def should_stop(self, trial_id: str, epoch: int, logs=None) -> bool:
        return trial_id in self._stop

    def trial_end(self, trial):
        return None  # the coordinator recorded it (and prints the progress line)

    def write(self) -> None:
        pass


class Heartbeats:
    """Keeps this worker's lease alive; exits the process when the coordinator is gone
    (unreachable for `give_up_after_s`, or the local parent process died)."""

    def __init__(self, client: CoordinatorClient, every_s: float = 5.0,
                 give_up_after_s: float = 120.0, parent_pid: Optional[int] = None):
        self.client = client
        self.every_s = every_s
        self.give_up_after_s = give_up_after_s
        self.parent_pid = parent_pid
        self._thread = threading.Thread(target=self._run, name="kt-heartbeat", daemon=True)

    def start(self) -> "Heartbeats":
        self._thread.start()
        return self

    def _run(self) -> None:
        last_ok = last_beat = time.monotonic()
        while True:
            time.sleep(min(self.every_s, 1.0))
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.error("worker %s: the coordinator process is gone; exiting",
                          self.client.worker_id)
                os._exit(3)
            if time.monotonic() - last_beat < self.every_s:
                continue
            last_beat = time.monotonic()
            try:
                self.client.call(wire.HEARTBEAT, {}, timeout=max(self.every_s, 1.0))
                last_ok = time.monotonic()
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    log.error("worker %s: the coordinator refused our token; exiting",
                              self.client.worker_id)
                    os._exit(3)
                if time.monotonic() - last_ok > self.give_up_after_s:
                    log.error("worker %s: coordinator %s unreachable for %.0fs; exiting",
                              self.client.worker_id, self.client.address, self.give_up_after_s)
                    os._exit(3)
