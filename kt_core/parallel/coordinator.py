"""The coordinator: keras-tuner's oracle served to trial workers over gRPC.

keras-tuner's own chief (distribute/oracle_chief.py) serves the oracle with its
`OracleServicer` and protos; this serves the same oracle with the same servicer
and protos, and adds what running it on a cluster needs:

* a token on every request (auth.py);
* leases: each running trial belongs to the worker that took it. A worker that
  stops heart-beating, or whose process/pod the launcher sees die, loses its
  trial, which goes back to keras-tuner's retry queue and runs again. A trial
  whose worker is lost `max_lost_per_trial` times is recorded FAILED (a model
  that kills its worker, e.g. out of memory, must not loop forever);
* one writer of `tuner_results.json`: workers report their epochs here;
* a prompt end: the search is over the moment the oracle has nothing left to hand
  out and nothing runs, instead of the chief's 20 s polling tail;
* durable state: oracle.json and every trial.json are written atomically as they
  change, so a re-run with the same output directory resumes (keras-tuner's
  reload puts the trials that were running back in the queue).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from typing import Callable, Dict, Optional

import grpc

from kt_core import results as results_lib
from kt_core.oracles import CopyOf, IncrementalFailureCheck
from kt_core.parallel import auth, wire
from kt_core.parallel.median_stopping import MedianStoppingRule
from kt_core.search import SearchError

log = logging.getLogger("kt_core")

WORKER_SPEC_FILE = "parallel_worker_spec.json"
STATUS_FILE = "parallel_status.json"  # which worker runs which trial, how far along


class Coordinator:
    """Hands out the oracle's trials to workers and records how they end.

    Requests are served by a grpc.aio server on one event loop in its own thread:
    no thread per request, so a long poll (CreateTrial waiting while the oracle has
    nothing yet, e.g. a Hyperband round) costs nothing and 64 workers do not queue
    behind a lock convoy. Every oracle call still happens under one lock
    (keras-tuner's oracles are not thread-safe), shared with the launcher watch in
    `wait()` and the state writer."""

    def __init__(self, oracle, recorder: results_lib.TrialRecorder, token: str, *,
                 median_rule: Optional[MedianStoppingRule] = None, lease_timeout_s: float = 60.0,
                 long_poll_s: float = 5.0, max_lost_per_trial: int = 3,
                 progress: Optional[Callable[[dict], None]] = None,
                 status_path: Optional[str] = None, tls: Optional[auth.TlsIdentity] = None):
        from keras_tuner.src.engine import trial as trial_module

        self._trial_module = trial_module
        self.oracle = oracle
        self.recorder = recorder
        self.token = token
        self.tls = tls  # given: calls only over TLS with this key and certificate
        self.median_rule = median_rule
        self.lease_timeout_s = lease_timeout_s
        self.long_poll_s = long_poll_s
        self.max_lost_per_trial = max_lost_per_trial
        self.progress = progress
        self._cond = threading.Condition()
        self._finished = threading.Event()
        self._error: Optional[BaseException] = None
        self._last_seen: Dict[str, float] = {}
        self._executions: Dict[str, int] = {}
        self._messages: Dict[str, str] = {}
        self._lost = collections.Counter()
        self._stop_announced = set()
        self.handouts = []  # (trial_id, worker_id), in order
        self._server_thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._grace_s = 1.0
        self._epochs_reported: Dict[str, int] = {}
        self.state = StateWriter(oracle, recorder, self._cond, status_path=status_path,
                                 status=self.status)
        # Lighter equivalents of keras-tuner's, on these instances; stop() removes them.
        oracle._check_consecutive_failures = IncrementalFailureCheck(oracle)
        oracle.hyperparameters.copy = CopyOf(oracle.hyperparameters)

    # -- serving ----------------------------------------------------------------

    def start(self, bind_host: str = "127.0.0.1", port: int = 0) -> int:
        """Serves on bind_host:port (0: any free port); returns the port."""
        ready = threading.Event()
        bound = {}
        self._server_thread = threading.Thread(target=self._serve, args=(bind_host, port, ready, bound),
                                               name="kt-coordinator", daemon=True)
        self._server_thread.start()
        ready.wait()
        if "error" in bound:
            raise bound["error"]
        self.state.start()
        return bound["port"]

    def _serve(self, bind_host: str, port: int, ready: threading.Event, bound: dict) -> None:
        from keras_tuner.src import protos

        async def serve():
            self._stopping = asyncio.Event()
            self._changed = asyncio.Event()
            server = grpc.aio.server(interceptors=[auth.TokenInterceptor(self.token)])
            servicer = _oracle_servicer(self)
            protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
            server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(wire.SERVICE, {
                wire.HEARTBEAT: self._unary(wire.HEARTBEAT, self._heartbeat),
                wire.REPORT_EPOCH: self._unary(wire.REPORT_EPOCH, self._report_epoch),
                wire.TRIAL_MESSAGE: self._unary(wire.TRIAL_MESSAGE, self._trial_message),
                wire.END_TRIAL_AND_NEXT: wire.handler(wire.END_TRIAL_AND_NEXT,
                                                      servicer.EndTrialAndNext),
            })])
            where = f"{bind_host}:{port}"
            bound["port"] = (server.add_secure_port(where, auth.server_credentials(self.tls))
                             if self.tls else server.add_insecure_port(where))
            if not bound["port"]:
                raise RuntimeError(f"coordinator: cannot listen on {bind_host}:{port}")
            await server.start()
            ready.set()
            await self._stopping.wait()
            await server.stop(self._grace_s)

        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(serve())
        except Exception as e:  # noqa: BLE001 - handed to start(), which raises it
            bound["error"] = e
        finally:
            ready.set()
            loop.close()

    @staticmethod
    def _unary(name, fn):
        async def behaviour(request, context):
            return fn(auth.worker_id_of(context), request)

        return wire.handler(name, behaviour)

    def stop(self, grace_s: float = 1.0) -> None:
        thread, self._server_thread = self._server_thread, None
        if thread is not None:
            self._grace_s = grace_s
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
            thread.join()
        self.state.stop()
        self.oracle.__dict__.pop("_check_consecutive_failures", None)
        self.oracle.hyperparameters.__dict__.pop("copy", None)

    def _notify(self) -> None:
        """Wakes the long polls (from any thread): something they wait for may have changed."""
        if self._loop is None:
            return

        def wake():
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

        with contextlib.suppress(RuntimeError):  # the loop already ended
            self._loop.call_soon_threadsafe(wake)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def status(self) -> dict:
        """Who runs what, how far along (parallel_status.json); caller holds the lock."""
        now = time.monotonic()
        return {"workers": {
            worker_id: {"trial_id": trial.trial_id,
                        "epochs_done": self._epochs_reported.get(trial.trial_id, 0),
                        "last_seen_s_ago": round(now - self._last_seen.get(worker_id, now), 1)}
            for worker_id, trial in self.oracle.ongoing_trials.items()},
            "trials_handed_out": len(self.handouts), "finished": self._finished.is_set()}

    def connected_workers(self):
        with self._cond:
            return set(self._last_seen)

    def wait(self, launcher, poll_s: float = 0.25) -> None:
        """Until the search is over: watches the launcher's workers and the leases."""
        while not self._finished.wait(poll_s):
            for worker_id, why in launcher.poll():
                self.worker_lost(worker_id, why)
            self.expire_leases()
            failure = launcher.failure()
            if failure and not self._finished.is_set():
                raise WorkersFailed(failure)
        if self._error is not None:
            raise self._error

    # -- the oracle calls (under one lock; keras-tuner's oracle is not thread-safe) --

    def _touch(self, worker_id: str) -> None:
        if worker_id:
            self._last_seen[worker_id] = time.monotonic()

    def holds(self, worker_id: str, trial_id: str) -> bool:
        trial = self.oracle.ongoing_trials.get(worker_id)
        return trial is not None and trial.trial_id == trial_id

    async def create_trial(self, worker_id: str):
        """A trial to run; waits (long poll) while the oracle has none *yet*."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.long_poll_s
        while True:
            changed = self._changed  # taken first: a change after this wakes the wait below
            trial = self._try_create_trial(worker_id)
            if trial is not None:
                return trial
            left = deadline - loop.time()
            if left <= 0:
                return self._trial_module.Trial(self.oracle.get_space(),
                                                status=self._trial_module.TrialStatus.IDLE)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    def _try_create_trial(self, worker_id: str):
        """The oracle's answer, or None when the worker should wait and ask again."""
        TrialStatus = self._trial_module.TrialStatus
        with self._cond:
            self._touch(worker_id)
            if self._finished.is_set():
                return self._trial_module.Trial(self.oracle.get_space(), status=TrialStatus.STOPPED)
            trial = self.oracle.create_trial(worker_id)
            if trial.status == TrialStatus.RUNNING:
                self._begin(worker_id, trial)
                return trial
            if (trial.status == TrialStatus.STOPPED and not self.oracle.ongoing_trials
                    and not self.oracle._retry_queue):
                log.info("search finished: no trial left to run")
                self._finish()
                return trial
            # IDLE (e.g. hyperband waits for a round), or stopped while trials still run
            # elsewhere (their worker may be lost and the trial come back): wait.
            return None

    def _begin(self, worker_id: str, trial) -> None:
        self.recorder.trial_begin(trial.trial_id)
        self._executions[trial.trial_id] = 0
        self._epochs_reported[trial.trial_id] = 0
        self.state.status_changed()
        self._messages.pop(trial.trial_id, None)
        if self.median_rule is not None:
            self.median_rule.discard(trial.trial_id)
        self.handouts.append((trial.trial_id, worker_id))
        log.info("trial %s -> worker %s", trial.trial_id, worker_id)

    def end_trial(self, worker_id: str, trial, metrics=None, epochs=()) -> None:
        """`metrics`: the MetricsTracker proto the worker sent with the trial's end; given
        to the oracle as the worker's update_trial calls would have been, unless those
        came already (keras-tuner's own workers send UpdateTrial). `epochs`: the trial's
        epochs the worker had not reported yet (see client.RemoteTrialLog)."""
        with self._cond:
            self._touch(worker_id)
            if not self.holds(worker_id, trial.trial_id):
                raise LeaseLost(trial.trial_id, worker_id)
            self._record_epochs(trial.trial_id, epochs)
            if metrics is not None and not self.oracle.trials[trial.trial_id].metrics.metrics:
                for step, values in _update_calls(metrics):
                    self.oracle.update_trial(trial.trial_id, values, step=step)
            trial.message = self._messages.pop(trial.trial_id, trial.message)
            self._end(trial, worker_id)

    def _end(self, trial, worker_id: str) -> None:
        """keras-tuner's end_trial, then the record; caller holds the lock."""
        trial_id = trial.trial_id
        try:
            self.oracle.end_trial(trial)
        except RuntimeError as e:  # keras-tuner: too many consecutive failures ends the search
            self.oracle.ongoing_trials.pop(worker_id, None)
            self._error = e
        record = self.recorder.trial_end(self.oracle.trials[trial_id])
        if self.median_rule is not None:
            if self.oracle.trials[trial_id].status == self._trial_module.TrialStatus.COMPLETED:
                self.median_rule.complete(trial_id)
            else:
                self.median_rule.discard(trial_id)
        if self.progress is not None:
            try:
                self.progress(record)
            except Exception as e:  # a progress line must never end the search
                log.warning("progress report failed: %s", e)
        if self._error is not None:
            self._finish()
        self.state.status_changed()
        self._notify()

    def worker_lost(self, worker_id: str, why: str) -> None:
        """The worker is gone: its trial goes back to the queue (or fails, if it keeps dying)."""
        with self._cond:
            self._last_seen.pop(worker_id, None)
            trial = self.oracle.ongoing_trials.pop(worker_id, None)
            if trial is None or self._finished.is_set():
                return
            trial_id = trial.trial_id
            self._lost[trial_id] += 1
            if self.median_rule is not None:
                self.median_rule.discard(trial_id)
            if self._lost[trial_id] >= self.max_lost_per_trial:
                log.warning("worker %s lost (%s); trial %s lost its worker %d times: recorded FAILED",
                            worker_id, why, trial_id, self._lost[trial_id])
                trial.status = self._trial_module.TrialStatus.FAILED
                trial.message = (f"the worker running this trial was lost {self._lost[trial_id]} "
                                 f"times (last: {why}); killed, out of memory, or preempted?")
                self._end(trial, worker_id)
                return
            log.warning("worker %s lost (%s): trial %s goes back to the queue",
                        worker_id, why, trial_id)
            self.oracle._retry_queue.append(trial_id)  # as keras-tuner's own reload() does
            self.oracle.save()
            self.state.status_changed()
            self._notify()

    def expire_leases(self) -> None:
        now = time.monotonic()
        with self._cond:
            stale = [w for w in self.oracle.ongoing_trials
                     if now - self._last_seen.get(w, now) > self.lease_timeout_s]
        for worker_id in stale:
            self.worker_lost(worker_id, f"no word from it for {self.lease_timeout_s:g}s")

    def _finish(self) -> None:
        self._finished.set()
        self.state.status_changed()
        self._notify()

    # -- the coordinator's own calls --------------------------------------------

    def _heartbeat(self, worker_id: str, request) -> dict:
        with self._cond:
            self._touch(worker_id)
        return {"finished": self._finished.is_set()}

    def _report_epoch(self, worker_id: str, request) -> dict:
        trial_id = request["trial_id"]
        with self._cond:
            self._touch(worker_id)
            if not self.holds(worker_id, trial_id):
                return {"stop": True, "leased": False}
            return {"stop": self._record_epochs(trial_id, request.get("epochs") or ()),
                    "leased": True}

    def _record_epochs(self, trial_id: str, epochs) -> bool:
        """Records a held trial's epochs ({execution, epoch, logs}, in order); True when
        the median stopping rule says it should stop. Caller holds the lock."""
        stop = False
        for report in epochs:
            epoch, logs = int(report["epoch"]), report.get("logs") or {}
            while self._executions.get(trial_id, 0) <= int(report.get("execution", 0)):
                self.recorder.execution_begin(trial_id)
                self._executions[trial_id] = self._executions.get(trial_id, 0) + 1
            self.recorder.epoch_end(trial_id, epoch, logs)
            self._epochs_reported[trial_id] = self._epochs_reported.get(trial_id, 0) + 1
            if self.median_rule is not None:
                stop = self.median_rule.report(trial_id, epoch,
                                               objective_value(self.oracle.objective, logs))
                if stop and trial_id not in self._stop_announced:
                    self._stop_announced.add(trial_id)
                    log.info("median stopping: trial %s stops after epoch %d (median of completed "
                             "trials: %s)", trial_id, epoch + 1, self.median_rule.median_at(epoch))
        if epochs:
            self.state.status_changed()
        return stop

    def _trial_message(self, worker_id: str, request) -> dict:
        with self._cond:
            self._touch(worker_id)
            if self.holds(worker_id, request["trial_id"]):
                self._messages[request["trial_id"]] = request.get("message") or ""
        return {}


class LeaseLost(Exception):
    def __init__(self, trial_id, worker_id):
        super().__init__(f"worker {worker_id} does not hold trial {trial_id} (its lease was "
                         f"revoked: the trial went back to the queue)")


class WorkersFailed(SearchError):
    """No worker can run any more (they keep crashing); the message says where to look."""


def objective_value(objective, logs) -> Optional[float]:
    try:
        if not objective.has_value(logs):
            return None
        value = objective.get_value(logs)
        value = None if value is None else float(value)
    except (TypeError, ValueError, KeyError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _update_calls(metrics_proto):
    """(step, {metric: value}) for each update_trial call a MetricsTracker proto holds:
    one value per execution at each step, every metric of a call reported together.
    Read off the proto as keras-tuner's MetricsTracker.from_proto reads it (observations
    of one step merged, in order), without building its objects."""
    calls = collections.defaultdict(dict)
    for name, history in metrics_proto.metrics.items():
        per_step = collections.defaultdict(list)
        for observation in history.observations:
            per_step[observation.step].extend(observation.value)
        for step, values in per_step.items():
            for i, value in enumerate(values):
                calls[(step, i)][name] = value
    return [(step, values) for (step, _), values in sorted(calls.items())]


def _oracle_servicer(coordinator: Coordinator):
    """keras-tuner's OracleServicer, each call under the coordinator's lock and lease rules."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine import trial as trial_module

    service, proto_module = protos.get_service(), protos.get_proto()
    handed_out = {}  # trial_id -> the hyperparameters proto sent with the trial

    class Servicer(OracleServicer):
        """keras-tuner's servicer methods, as coroutines for the grpc.aio server."""

        def _locked(self, method, request, context):
            with coordinator._cond:
                coordinator._touch(auth.worker_id_of(context))
                return method(self, request, context)

        async def GetSpace(self, request, context):
            return self._locked(OracleServicer.GetSpace, request, context)

        async def UpdateSpace(self, request, context):
            return self._locked(OracleServicer.UpdateSpace, request, context)

        async def GetTrial(self, request, context):
            return self._locked(OracleServicer.GetTrial, request, context)

        async def GetBestTrials(self, request, context):
            return self._locked(OracleServicer.GetBestTrials, request, context)

        async def CreateTrial(self, request, context):
            trial = await coordinator.create_trial(auth.worker_id_of(context) or request.tuner_id)
            proto = trial.to_proto()
            if trial.status == trial_module.TrialStatus.RUNNING:
                handed_out[trial.trial_id] = proto.hyperparameters
            return service.CreateTrialResponse(trial=proto)

        async def UpdateTrial(self, request, context):
            # The reply carries what a worker reads from it, the trial's status; keras-tuner's
            # servicer sends the whole trial back, to be serialized and parsed on every report.
            worker_id = auth.worker_id_of(context)
            with coordinator._cond:
                if coordinator.holds(worker_id, request.trial_id):
                    coordinator._touch(worker_id)
                    trial = coordinator.oracle.update_trial(request.trial_id, request.metrics,
                                                            step=request.step)
                    return service.UpdateTrialResponse(trial=proto_module.Trial(
                        trial_id=trial.trial_id,
                        status=trial_module.TrialStatus.to_proto(trial.status)))
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                str(LeaseLost(request.trial_id, worker_id)))

        async def EndTrial(self, request, context, epochs=()):
            worker_id = auth.worker_id_of(context)
            try:
                coordinator.end_trial(worker_id, self._ended(request.trial), request.trial.metrics,
                                      epochs)
            except LeaseLost as e:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
            return service.EndTrialResponse()

        async def EndTrialAndNext(self, request: wire.EndAndNext, context):
            """EndTrial (with the epochs not reported yet), then CreateTrial for the same
            worker, in one round trip."""
            await self.EndTrial(request.request, context, request.epochs)
            return await self.CreateTrial(service.CreateTrialRequest(), context)

        @staticmethod
        def _ended(proto):
            """What keras-tuner's end_trial takes from the worker's trial: its status and its
            hyperparameters. These are parsed only when the worker's build registered new
            ones; otherwise they are the ones handed out, already in the oracle."""
            sent = handed_out.pop(proto.trial_id, None)
            known = coordinator.oracle.trials.get(proto.trial_id)
            if sent is None or known is None or proto.hyperparameters != sent:
                return trial_module.Trial.from_proto(proto)
            return trial_module.Trial(known.hyperparameters, trial_id=proto.trial_id,
                                      status=trial_module.TrialStatus.from_proto(proto.status))

    return Servicer(coordinator.oracle)


# -- running a search with it -----------------------------------------------------

class StateWriter:
    """Writes the search state as it changes, off the request path.

    keras-tuner's oracle rewrites oracle.json and a trial.json on every create/end, and
    TrialRecorder rewrites tuner_results.json on every trial end (O(trials) each); done
    inside a request that is what bounds hand-out latency with many workers. Here the
    requests only mark what changed; a writer thread snapshots it under the
    coordinator's lock and writes it outside, atomically (write-then-rename), trials
    and oracle first, results last, so a recorded trial is never missing from the
    oracle on resume. tuner_results.json (the largest) is rewritten at most every
    `results_every_s`. A killed coordinator loses at most the changes of one write."""

    def __init__(self, oracle, recorder: results_lib.TrialRecorder, lock: threading.Condition,
                 results_every_s: float = 1.0, every_s: float = 0.1, status_path: Optional[str] = None,
                 status: Optional[Callable[[], dict]] = None):
        self.oracle, self.recorder, self._lock = oracle, recorder, lock
        self.status_path, self._status = status_path, status
        self._dirty_status = False
        self.results_every_s = results_every_s
        self.every_s = every_s
        self._trial_dirs: Dict[str, str] = {}
        self._trials_parent: Optional[str] = None  # local: where trial directories go
        self._results_written = 0.0
        self._dirty_trials: Dict[str, object] = {}
        self._dirty_oracle = self._dirty_results = False
        self._wake = threading.Event()
        self._writing = threading.Lock()  # one flush at a time: flush() returns written
        self._stopped = False
        self._thread: Optional[threading.Thread] = None
        # Instance attributes over the classes' methods; stop() removes them again.
        oracle.save = self._oracle_changed
        oracle._save_trial = self._trial_changed
        recorder.write = self._results_changed

    def _oracle_changed(self):
        self._dirty_oracle = True
        self._wake.set()

    def _trial_changed(self, trial):
        self._dirty_trials[trial.trial_id] = trial
        self._wake.set()

    def _results_changed(self):
        self._dirty_results = True
        self._wake.set()

    def status_changed(self):
        if self.status_path:
            self._dirty_status = True
            self._wake.set()

    def start(self) -> "StateWriter":
        self._thread = threading.Thread(target=self._run, name="kt-state-writer", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stopped:
            # Results held back (written too recently) are written when due.
            due = (self._results_written + self.results_every_s - time.monotonic()
                   if self._dirty_results else None)
            self._wake.wait(None if due is None else max(due, 0.0))
            self._wake.clear()
            self.flush(everything=False)
            # Changes that come meanwhile are written together: one trial.json per trial
            # and one oracle.json per round, however many calls changed them.
            time.sleep(self.every_s)

    def flush(self, everything: bool = True) -> None:
        with self._writing:
            self._flush(everything)

    def _flush(self, everything: bool) -> None:
        with self._lock:
            trials = {t: json.dumps(trial.get_state()) for t, trial in self._dirty_trials.items()}
            oracle_state = json.dumps(self.oracle.get_state()) if self._dirty_oracle else None
            records = None
            if self._dirty_results and (
                    everything or time.monotonic() - self._results_written >= self.results_every_s):
                records = self.recorder.ordered()
                self._dirty_results = False
                self._results_written = time.monotonic()
            status = json.dumps(self._status(), indent=1) if self._dirty_status else None
            self._dirty_trials, self._dirty_oracle, self._dirty_status = {}, False, False
        write = results_lib.atomic_write
        for trial_id, text in trials.items():
            write(os.path.join(self._trial_dir(trial_id), "trial.json"), text)
        if oracle_state is not None:
            write(self.oracle._get_oracle_fname(), oracle_state)
        if records is not None:
            write(self.recorder.results_path, results_lib.records_json(records))
        if status is not None:
            write(self.status_path, status)

    def _trial_dir(self, trial_id: str) -> str:
        """keras-tuner's trial directory, created once: its own `_get_trial_dir` checks and
        creates the project and trial directories through tf.io.gfile on every call. Once
        the first local one shows its layout (project/trial_<id>), the others are made
        with one mkdir each."""
        path = self._trial_dirs.get(trial_id)
        if path is None:
            if self._trials_parent is not None:
                path = os.path.join(self._trials_parent, f"trial_{trial_id}")
                os.makedirs(path, exist_ok=True)
            else:
                path = self.oracle._get_trial_dir(trial_id)
                if "://" not in path and os.path.basename(path) == f"trial_{trial_id}":
                    self._trials_parent = os.path.dirname(path)
            self._trial_dirs[trial_id] = path
        return path

    def stop(self) -> None:
        """Writes what is left; after this, writes happen in the caller again."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        for obj, name in ((self.oracle, "save"), (self.oracle, "_save_trial"),
                          (self.recorder, "write")):
            obj.__dict__.pop(name, None)


def reconcile_records(oracle, recorder: results_lib.TrialRecorder) -> None:
    """Trials an earlier run ended but did not get to record (killed in between)."""
    for trial_id in oracle.end_order:
        if trial_id not in recorder.records and trial_id in oracle.trials:
            recorder.trial_end(oracle.trials[trial_id])


def median_rule_for(config, oracle, recorder) -> Optional[MedianStoppingRule]:
    rule = MedianStoppingRule.from_config(config.median_stopping, oracle.objective.direction)
    if rule is None:
        return None
    for record in recorder.records.values():  # resumed: completed trials are the reference
        if record.get("status") == "COMPLETED":
            values = collections.defaultdict(list)
            for execution in record.get("metrics") or []:
                for epoch_logs in execution:
                    value = objective_value(oracle.objective, epoch_logs)
                    if value is not None:
                        values[int(epoch_logs["epoch"])].append(value)
            best = min if rule.direction == "min" else max
            rule.add_completed(record["trial_id"], {e: best(v) for e, v in values.items()})
    return rule


def write_worker_spec(output_dir: str, config, examples_dir, label_key, module_file,
                      schema_path) -> str:
    """What a worker reads to load the same search: one file next to the results."""
    path = os.path.join(output_dir, WORKER_SPEC_FILE)
    spec = {"config": {**config.to_dict(), "overwrite": False}, "examples": examples_dir,
            "label_key": label_key, "module_file": module_file, "schema": schema_path}
    results_lib.atomic_write(path, json.dumps(spec, indent=1, sort_keys=True))
    return path


@contextlib.contextmanager
def _sigterm_ends_search():
    """SIGTERM (pod deletion, a cancelled run) unwinds the search, so the workers are
    stopped and the Job deleted; without it the process would die on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def search_in_parallel(tuner, config, output_dir: str, *, examples_dir: str, label_key: str,
                       module_file: Optional[str], schema_path: Optional[str],
                       launcher=None, lease_timeout_s: float = 60.0) -> Coordinator:
    """Runs `tuner`'s search with workers; returns when every trial is accounted for.

    `tuner` is the SearchTuner run_search built (its oracle, reloaded on resume, and its
    recorder stay here); workers build their own from the worker spec."""
    from kt_core.parallel import launchers

    oracle = tuner.oracle
    oracle.verbose = config.verbose
    if launcher is None:
        launcher = launchers.from_config(config)
    module_file = launcher.share_module_file(module_file, output_dir)
    write_worker_spec(output_dir, config, examples_dir, label_key, module_file, schema_path)

    coordinator = Coordinator(oracle, tuner.recorder, auth.new_token(),
                              lease_timeout_s=lease_timeout_s, progress=tuner._progress,
                              status_path=os.path.join(output_dir, STATUS_FILE),
                              tls=auth.new_tls_identity() if launcher.tls else None)
    reconcile_records(oracle, tuner.recorder)
    coordinator.median_rule = median_rule_for(config, oracle, tuner.recorder)
    tuner.save()  # oracle.json + the tuner file: what a re-run reloads
    coordinator.state.flush()
    port = coordinator.start(bind_host=launcher.bind_host)
    address = f"{launcher.advertise_host()}:{port}"
    started = time.time()
    try:
        with _sigterm_ends_search():
            launcher.start(address, coordinator.token, output_dir,
                           cert_pem=coordinator.tls.cert_pem if coordinator.tls else None)
            log.info("coordinator at %s%s: %d worker(s) (%s launcher)", address,
                     " (TLS)" if coordinator.tls else "", launcher.num_workers, launcher.name)
            coordinator.wait(launcher)
    finally:
        launcher.stop(grace_s=5.0 if coordinator.finished else 0.0,
                      connected=coordinator.connected_workers())
        coordinator.stop()
    log.info("parallel search done in %.1fs: %d trial(s) handed out", time.time() - started,
             len(coordinator.handouts))
    return coordinator
