"""Parallel trials: a coordinator (keras-tuner's oracle over gRPC) and worker processes.

Real gRPC between real processes, real TensorFlow trials on the penguins TFRecords,
real signals for the fault tests. What cannot run here: GPUs (placement is checked
through each worker process's real CUDA_VISIBLE_DEVICES / CPU affinity) and a
Kubernetes API server (the launcher's calls go through the real kubernetes client
down to its HTTP layer, where a recording ApiClient answers instead of a server).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import grpc
import pytest
import yaml
from conftest import REPO, module

from kt_core.config import ConfigError, TuningConfig
from kt_core.parallel import auth, devices, wire
from kt_core.parallel.devices import Placement, place_workers
from kt_core.parallel.median_stopping import MedianStoppingRule

MLP = module("mlp_conditional")
KILL_TIMEOUT_S = 300  # generous: a hung search fails the test instead of hanging it


# -- placement and the median rule: pure logic ---------------------------------------

def test_gpu_and_cpu_placement():
    placed = place_workers(4, gpus=["2", "5"], trials_per_gpu=2, cpus=[0, 1, 2, 3])
    assert [p.gpu for p in placed] == ["2", "2", "5", "5"]
    assert all(p.env()["CUDA_VISIBLE_DEVICES"] == p.gpu for p in placed)
    assert all(p.env()["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for p in placed)
    assert [p.gpu for p in place_workers(2, ["0", "1"], 1, [0, 1])] == ["0", "1"]
    with pytest.raises(ConfigError, match="num_parallel_trials: 3 workers do not fit on 1 GPU"):
        place_workers(3, ["0"], 2, [0, 1])
    # No GPU: CUDA hidden, cores split (evenly, the remainder to the first workers).
    cpu_only = place_workers(3, [], 1, list(range(8)))
    assert [p.cpus for p in cpu_only] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert all(p.env()["CUDA_VISIBLE_DEVICES"] == "" for p in cpu_only)
    assert [p.cpus for p in place_workers(3, [], 1, [0, 1])] == [[0], [1], [0]]
    assert Placement(None, [4, 5]).env()["KT_WORKER_CPUS"] == "4,5"


def test_median_stopping_rule():
    rule = MedianStoppingRule("min", min_completed_trials=2, min_epochs=2)
    for trial_id, losses in (("a", [1.0, 0.5, 0.4]), ("b", [0.9, 0.7, 0.6])):
        for epoch, loss in enumerate(losses):
            assert not rule.report(trial_id, epoch, loss)  # nothing completed yet
        rule.complete(trial_id)
    assert rule.median_at(1) == pytest.approx(0.6)
    assert not rule.report("bad", 0, 5.0)  # min_epochs: epoch 1 is the first judged
    assert rule.report("bad", 1, 4.0)      # 4.0 is worse than the median 0.6
    assert rule.report("bad", 2, 0.1)      # stays stopped
    assert not rule.report("good", 0, 0.8) and not rule.report("good", 1, 0.55)
    assert rule.report("diverged", 1, None)  # NaN/inf: worse than any median
    # Best so far: a trial that was good earlier is judged by its best value.
    assert not rule.report("dip", 0, 0.3) and not rule.report("dip", 1, 2.0)
    rule.discard("bad")  # requeued: judged afresh
    assert not rule.report("bad", 0, 0.2)
    up = MedianStoppingRule("max", min_completed_trials=1, min_epochs=1)
    up.add_completed("x", {0: 0.9, 1: 0.95})
    assert up.report("y", 0, 0.5) and not up.report("z", 0, 0.93)
    # The median kept as trials complete is the median of their curves (a trial
    # completed again, e.g. resumed and re-recorded, counts once).
    import random
    import statistics

    rng, rule, curves = random.Random(0), MedianStoppingRule("min", min_completed_trials=1), {}
    for _ in range(300):
        trial_id = str(rng.randint(0, 60))
        curve = {e: rng.random() for e in range(rng.randint(1, 4))}
        rule.add_completed(trial_id, curve)
        curves[trial_id] = {e: min(v for k, v in curve.items() if k <= e) for e in curve}
        epoch = rng.randint(0, 3)
        reached = [c[epoch] for c in curves.values() if epoch in c]
        assert rule.median_at(epoch) == (statistics.median(reached) if reached else None)


def test_config_keys_for_parallel_search():
    config = TuningConfig.from_dict({"num_parallel_trials": 4, "launcher": "kubernetes",
                                     "median_stopping": {"min_completed_trials": 2},
                                     "worker_pod": {"gpus": 1, "node_selector": {"pool": "gpu"}}})
    assert TuningConfig.from_dict(json.loads(config.to_json())) == config
    for bad, fragment in (({"num_parallel_trials": 0}, "num_parallel_trials: must be >= 1"),
                          ({"launcher": "slurm"}, "launcher: must be one of"),
                          ({"trials_per_gpu": 2, "launcher": "kubernetes"}, "trials_per_gpu"),
                          ({"median_stopping": {"patience": 2}}, "median_stopping: unknown key"),
                          ({"median_stopping": {"min_epochs": 0}}, "median_stopping.min_epochs"),
                          ({"median_stopping": {}, "tuner": "hyperband"}, "median_stopping: hyperband"),
                          ({"worker_pod": {"gpu": 1}}, "worker_pod: unknown key"),
                          ({"worker_pod": {"node_selector": {"a": 1}}}, "worker_pod.node_selector")):
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            TuningConfig.from_dict(bad)


def test_incremental_failure_check_raises_as_keras_tuners_rescan_does():
    import random

    import keras_tuner
    from keras_tuner.src.engine.trial import Trial, TrialStatus

    from kt_core.oracles import IncrementalFailureCheck

    def outcome(check):
        try:
            check()
        except RuntimeError as e:
            return str(e)
        return None

    rng = random.Random(0)
    for _ in range(200):
        oracle = keras_tuner.oracles.RandomSearchOracle(objective="loss", max_trials=50,
                                                        max_consecutive_failed_trials=3)
        incremental = IncrementalFailureCheck(oracle)
        for i in range(rng.randint(1, 12)):
            status = rng.choice([TrialStatus.FAILED, TrialStatus.FAILED, TrialStatus.COMPLETED])
            oracle.trials[str(i)] = Trial(oracle.get_space(), trial_id=str(i), status=status,
                                          message=f"error of trial {i}")
            oracle.end_order.append(str(i))
            if rng.random() < 0.7:  # called at most trial ends, as keras-tuner does
                assert outcome(incremental) == outcome(oracle._check_consecutive_failures)


def test_hyperparameter_copy_is_keras_tuners_and_the_coordinator_uses_it(tmp_path):
    import keras_tuner

    from kt_core.oracles import CopyOf, copy_hyperparameters

    hp = keras_tuner.HyperParameters()
    hp.Fixed("fixed", 3)
    hp.Boolean("flag", default=True)
    model = hp.Choice("model", ["mlp", "cnn"], ordered=False)
    with hp.conditional_scope("model", "cnn"):
        hp.Int("filters", 8, 64, step=8, sampling="linear", default=16)
    with hp.conditional_scope("model", ["mlp"]):
        hp.Float("lr", 1e-4, 1e-1, sampling="log")
        hp.Float("dropout", 0.0, 0.5, step=0.1)
    assert model == "mlp"
    copy, theirs = copy_hyperparameters(hp), hp.copy()
    assert copy.get_config() == theirs.get_config()
    assert [type(p) for p in copy.space] == [type(p) for p in theirs.space]
    assert copy.is_active("lr") and not copy.is_active("filters")
    copy.values["lr"] = 0.5
    copy.Int("added", 1, 2)
    assert hp.values["lr"] != 0.5 and "added" not in hp  # a copy, not a view

    coordinator, _ = _coordinator(tmp_path)
    try:
        space = coordinator.oracle.hyperparameters
        assert isinstance(space.copy, CopyOf) and space.copy.hyperparameters is space
        trial = coordinator.oracle.create_trial("w")  # keras-tuner's create_trial copies it
        assert trial.hyperparameters is not space
        assert trial.hyperparameters.get_config()["space"] == space.get_config()["space"]
    finally:
        coordinator.stop()
    assert "copy" not in vars(space)  # keras-tuner's own again


# -- the coordinator over real gRPC, without training ---------------------------------

def _coordinator(tmp_path, **kwargs):
    import keras_tuner

    from kt_core import results
    from kt_core.parallel.coordinator import Coordinator

    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 1000)
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="loss", max_trials=3,
                                                    hyperparameters=hp, seed=1)
    oracle._set_project_dir(str(tmp_path), "search")
    oracle.verbose = 0
    recorder = results.TrialRecorder(str(tmp_path / "tuner_results.json"))
    coordinator = Coordinator(oracle, recorder, auth.new_token(), **kwargs)
    port = coordinator.start()
    return coordinator, f"127.0.0.1:{port}"


def _worker(address, token, worker_id):
    from kt_core.parallel.client import CoordinatorClient, remote_oracle

    client = CoordinatorClient(address, token, worker_id)
    return client, remote_oracle(client, "loss", 3)


def test_requests_without_the_token_are_refused(tmp_path):
    from keras_tuner.src import protos

    coordinator, address = _coordinator(tmp_path)
    try:
        bare = grpc.insecure_channel(address)
        stub = protos.get_service_grpc().OracleStub(bare)
        heartbeat = wire.stub(bare, wire.HEARTBEAT)
        for call in (lambda: stub.GetSpace(protos.get_service().GetSpaceRequest(), timeout=10),
                     lambda: stub.CreateTrial(protos.get_service().CreateTrialRequest(tuner_id="x"),
                                              timeout=10),
                     lambda: heartbeat({}, timeout=10)):
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:  # a wrong token is no better
            _worker(address, "not-" + coordinator.token, "w")[1].get_space()
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert not coordinator.oracle.trials and not coordinator.handouts
        # With the token: served.
        assert "units" in [p.name for p in _worker(address, coordinator.token, "w")[1].get_space().space]
    finally:
        coordinator.stop()


def test_over_tls_only_workers_trusting_the_searchs_certificate_get_through(tmp_path):
    """What pods get: TLS with a certificate made for this search (and the token still)."""
    from keras_tuner.src import protos

    identity = auth.new_tls_identity()
    coordinator, address = _coordinator(tmp_path, tls=identity)
    try:
        def space(cert, token=coordinator.token):
            channel = auth.authenticated_channel(address, token, "w", cert)
            try:
                stub = protos.get_service_grpc().OracleStub(channel)
                return stub.GetSpace(protos.get_service().GetSpaceRequest(), timeout=10)
            finally:
                channel.close()

        from keras_tuner import HyperParameters

        served = HyperParameters.from_proto(space(identity.cert_pem).hyperparameters)
        assert "units" in [p.name for p in served.space]
        for cert in (None, auth.new_tls_identity().cert_pem):  # plaintext; another certificate
            with pytest.raises(grpc.RpcError) as e:
                space(cert)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as e:  # TLS is not a pass: the token still counts
            space(identity.cert_pem, token="not-" + coordinator.token)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        coordinator.stop()


def test_search_over_tls_with_real_workers(tmp_path, caplog):
    """The worker command, given the certificate as a pod would get it, runs its trials
    (the coordinator listens for TLS only, so a completed trial went over TLS)."""
    from kt_core.parallel.launchers import LocalLauncher
    from kt_core.search import run_search

    config = TuningConfig.from_dict({"tuner": "random", "max_trials": 2, "epochs": 1, "seed": 1,
                                     "objective": "val_loss", "num_parallel_trials": 2})
    launcher = LocalLauncher(2, tls=True)
    with caplog.at_level("INFO", logger="kt_core"):
        result = run_search(config, os.path.join(REPO, "data", "penguins", "examples"),
                            "species", str(tmp_path / "out"), module_file=MLP,
                            save_best_model=False, launcher=launcher)
    assert re.search(r"coordinator at 127\.0\.0\.1:\d+ \(TLS\): 2 worker", caplog.text)
    assert sorted(r["status"] for r in result.trials) == ["COMPLETED", "COMPLETED"]
    assert {w for _, w in re.findall(r"trial (\d+) -> worker (\S+)", caplog.text)} <= \
        {"local-0", "local-1"}


def test_lost_worker_lease_requeues_its_trial_and_its_late_report_is_refused(tmp_path):
    from keras_tuner.src.engine.trial import TrialStatus

    from kt_core.parallel.client import LeaseLost

    coordinator, address = _coordinator(tmp_path, lease_timeout_s=0.2, long_poll_s=0.5)
    try:
        _, a = _worker(address, coordinator.token, "a")
        _, b = _worker(address, coordinator.token, "b")
        taken = a.create_trial("ignored")
        assert taken.status == TrialStatus.RUNNING
        time.sleep(0.4)  # "a" goes silent for longer than its lease
        coordinator.expire_leases()
        again = b.create_trial("ignored")
        assert again.trial_id == taken.trial_id  # back in the queue, handed to "b"
        a.update_trial(taken.trial_id, {"loss": 0.5})  # kept by "a" until the trial ends
        taken.status = TrialStatus.COMPLETED
        with pytest.raises(LeaseLost):  # "a" comes back: its result is not accepted
            a.end_trial(taken)
        b.update_trial(again.trial_id, {"loss": 1.0})
        again.status = TrialStatus.COMPLETED
        b.end_trial(again)  # ... and brings back b's next trial
        coordinator.state.flush()
        # Once per trial in tuner_results.json; b's result is the one kept.
        with open(tmp_path / "tuner_results.json") as f:
            records = json.load(f)
        assert [(r["trial_id"], r["status"], r["score"]) for r in records] == \
            [(taken.trial_id, "COMPLETED", 1.0)]
        # A trial that keeps losing its worker (e.g. OOM-kills it) ends FAILED, not in a loop.
        lost = b.create_trial("ignored")
        assert coordinator.handouts == [(taken.trial_id, "a"), (taken.trial_id, "b"),
                                        (lost.trial_id, "b")]
        for worker_id in ("b", "c", "d"):
            if worker_id != "b":
                assert _worker(address, coordinator.token, worker_id)[1].create_trial("x").trial_id \
                    == lost.trial_id
            coordinator.worker_lost(worker_id, "killed by signal 9")
        assert coordinator.oracle.trials[lost.trial_id].status == TrialStatus.FAILED
        coordinator.state.flush()
        with open(tmp_path / "tuner_results.json") as f:
            failed = [r for r in json.load(f) if r["trial_id"] == lost.trial_id]
        assert len(failed) == 1 and "lost 3 times" in failed[0]["error"]
    finally:
        coordinator.stop()


def test_one_call_between_trials_and_keras_tuners_own_calls_still_served(tmp_path):
    """Our worker ends a trial (metrics included) and gets the next in one call; a client
    speaking keras-tuner's protocol (UpdateTrial, then EndTrial) gets the same record."""
    from keras_tuner.src import protos
    from keras_tuner.src.engine.trial import Trial, TrialStatus

    service = protos.get_service()
    coordinator, address = _coordinator(tmp_path)
    try:
        client, ours = _worker(address, coordinator.token, "ours")
        first = ours.create_trial("ignored")
        ours.update_trial(first.trial_id, {"loss": 0.25, "acc": 0.5}, step=3)
        assert ours.get_trial(first.trial_id).metrics.get_best_value("loss") == 0.25  # local
        first.status = TrialStatus.COMPLETED
        ours.end_trial(first)
        handed = [t for t, _ in coordinator.handouts]
        assert len(handed) == 2 and handed[0] == first.trial_id  # the next came with the end
        second = ours.create_trial("ignored")
        assert second.trial_id == handed[1] and second.status == TrialStatus.RUNNING
        ended = coordinator.oracle.trials[first.trial_id]
        assert (ended.status, ended.score, ended.best_step) == (TrialStatus.COMPLETED, 0.25, 3)
        assert ended.metrics.get_history("acc")[0].value == [0.5]  # once, not twice

        channel = grpc.intercept_channel(grpc.insecure_channel(address), auth._Metadata(
            [(auth._AUTH_KEY, f"Bearer {coordinator.token}"), (auth.WORKER_KEY, "stock")]))
        stub = protos.get_service_grpc().OracleStub(channel)
        third = stub.CreateTrial(service.CreateTrialRequest(tuner_id="stock"), timeout=10).trial
        stub.UpdateTrial(service.UpdateTrialRequest(trial_id=third.trial_id, metrics={"loss": 0.75},
                                                    step=1), timeout=10)
        full = stub.GetTrial(service.GetTrialRequest(trial_id=third.trial_id), timeout=10).trial
        full.status = TrialStatus.to_proto(TrialStatus.COMPLETED)
        stub.EndTrial(service.EndTrialRequest(trial=full), timeout=10)  # metrics already known
        ended = coordinator.oracle.trials[third.trial_id]
        assert (ended.status, ended.score) == (TrialStatus.COMPLETED, 0.75)
        assert ended.metrics.get_history("loss")[0].value == [0.75]
        assert Trial.from_proto(full).trial_id == third.trial_id
        coordinator.state.flush()
        with open(tmp_path / "tuner_results.json") as f:
            scores = {r["trial_id"]: r["score"] for r in json.load(f)}
        assert scores == {first.trial_id: 0.25, third.trial_id: 0.75}
        client.close()
        channel.close()
    finally:
        coordinator.stop()


def test_epochs_wait_for_the_trials_end_unless_median_stopping_needs_each(tmp_path):
    """Without median stopping a short trial's epochs travel with its end (no call per
    epoch); with it, each epoch is sent as it ends. Either way each is recorded once."""
    from keras_tuner.src.engine.trial import TrialStatus

    from kt_core.parallel.client import RemoteTrialLog, remote_oracle

    coordinator, address = _coordinator(tmp_path)
    try:
        client, _ = _worker(address, coordinator.token, "w")
        trial_log = RemoteTrialLog(client, report_each_epoch=False, report_every_s=3600)
        oracle = remote_oracle(client, "loss", 3, unreported=trial_log.unreported)

        def run(losses):
            trial = oracle.create_trial("ignored")
            trial_log.trial_begin(trial.trial_id)
            trial_log.execution_begin(trial.trial_id)
            sent = []
            for epoch, loss in enumerate(losses):
                trial_log.epoch_end(trial.trial_id, epoch, {"loss": loss})
                with coordinator._cond:
                    sent.append(coordinator.status()["workers"]["w"]["epochs_done"])
            oracle.update_trial(trial.trial_id, {"loss": min(losses)}, step=0)
            trial.status = TrialStatus.COMPLETED
            oracle.end_trial(trial)
            return trial.trial_id, sent

        quiet, sent_quiet = run([0.9, 0.5, 0.7])
        assert sent_quiet == [0, 0, 0]  # nothing sent before the end
        trial_log.report_each_epoch = True  # what the worker does with median stopping on
        eager, sent_eager = run([0.8, 0.6])
        assert sent_eager == [1, 2]
        trial_log.report_each_epoch, trial_log.report_every_s = False, 0.0  # a long trial
        slow, sent_slow = run([0.4])
        assert sent_slow == [1]
        coordinator.state.flush()
        with open(tmp_path / "tuner_results.json") as f:
            epochs = {r["trial_id"]: r["metrics"] for r in json.load(f)}
        assert epochs == {
            quiet: [[{"epoch": 0, "loss": 0.9}, {"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.7}]],
            eager: [[{"epoch": 0, "loss": 0.8}, {"epoch": 1, "loss": 0.6}]],
            slow: [[{"epoch": 0, "loss": 0.4}]]}
        client.close()
    finally:
        coordinator.stop()


# -- whole searches: the CLI with worker processes ------------------------------------

def _tune(out, config, tmp_path, module_file=MLP):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "tune", "--examples",
         os.path.join(REPO, "data", "penguins", "examples"), "--module-file", module_file,
         "--label-key", "species", "--output-dir", str(out), "--config", str(path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _wait_for(condition, proc, what):
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"search exited ({proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def _workers_of(coordinator_pid):
    """{worker id: pid} of the live worker processes started by that coordinator."""
    import psutil

    found = {}
    for child in psutil.Process(coordinator_pid).children():
        try:
            env = child.environ()
        except psutil.Error:
            continue
        if auth.WORKER_ID_ENV in env:
            found[env[auth.WORKER_ID_ENV]] = child
    return found


def _finish(proc):
    try:
        output, _ = proc.communicate(timeout=KILL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the search hung:\n" + proc.communicate()[0])
    return output


def test_sigkilled_worker_trial_runs_again_and_search_exits_0(tmp_path):
    out = tmp_path / "out"
    proc = _tune(out, {"tuner": "random", "max_trials": 3, "epochs": 4, "seed": 3,
                       "objective": "val_loss", "num_parallel_trials": 2}, tmp_path)

    def mid_trial():  # a worker that holds a trial and has reported an epoch of it
        status = (_read_json(out / "parallel_status.json") or {}).get("workers", {})
        for worker_id, running in sorted(status.items()):
            if running.get("epochs_done", 0) >= 1:
                return worker_id, running["trial_id"]
        return None

    # Whichever worker gets there first: the other may still be starting (importing
    # TensorFlow on a busy machine takes seconds).
    victim_worker, victim_trial = _wait_for(mid_trial, proc, "a worker to be mid-trial")
    workers = _workers_of(proc.pid)
    assert set(workers) == {"local-0", "local-1"}
    # Placement, as the processes really have it: no GPU here, one core each.
    envs = {w: p.environ() for w, p in workers.items()}
    assert {w: e["CUDA_VISIBLE_DEVICES"] for w, e in envs.items()} == {"local-0": "", "local-1": ""}
    # The cores split between them; a worker pins itself once its imports are done, so the
    # real affinity is checked on the one mid-trial (the other may still be importing).
    given = {w: {int(c) for c in e[devices.CPUS_ENV].split(",")} for w, e in envs.items()}
    if len(os.sched_getaffinity(0)) >= 2:
        assert not given["local-0"] & given["local-1"]
        assert given["local-0"] | given["local-1"] == set(os.sched_getaffinity(0))
    assert set(workers[victim_worker].cpu_affinity()) == given[victim_worker]
    token = envs["local-0"][auth.TOKEN_ENV]
    assert envs["local-1"][auth.TOKEN_ENV] == token and len(token) >= 32
    command = workers[victim_worker].cmdline()

    workers[victim_worker].send_signal(signal.SIGKILL)
    output = _finish(proc)
    assert proc.returncode == 0, output
    assert (f"worker {victim_worker} lost (killed by signal 9): trial {victim_trial} goes back "
            "to the queue") in output
    records = _read_json(out / "tuner_results.json")
    assert sorted(r["trial_id"] for r in records) == ["0", "1", "2"]  # each exactly once
    assert all(r["status"] == "COMPLETED" for r in records)
    victim = next(r for r in records if r["trial_id"] == victim_trial)
    assert [e["epoch"] for e in victim["metrics"][0]] == list(range(4))  # re-run from the start
    handed = re.findall(r"trial (\d+) -> worker (\S+)", output)
    assert [t for t, _ in handed].count(victim_trial) == 2
    assert (victim_trial, victim_worker) in handed
    # The token never reaches a log line or a file of the search.
    assert token not in output
    for root, _, files in os.walk(out):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert token.encode() not in f.read(), name
    # The worker command is the one the Kubernetes launcher puts in its Job.
    from kt_core.parallel.worker import worker_command

    assert command[0] == sys.executable
    assert command[1:] == worker_command("python", command[command.index("--coordinator") + 1],
                                         str(out))[1:]


def test_interrupted_search_resumes_without_rerunning_completed_trials(tmp_path, caplog):
    import psutil

    from kt_core.search import run_search

    out = tmp_path / "out"
    # flaky.py fails its "13 units" trial: a failed trial is recorded, and is not re-run either.
    config = {"tuner": "grid", "max_trials": 4, "epochs": 2, "seed": 5,
              "objective": "val_accuracy", "num_parallel_trials": 2}
    first = _tune(out, config, tmp_path, module_file=module("flaky"))

    def some_done():
        records = _read_json(out / "tuner_results.json") or []
        done = [r for r in records if r["status"] == "COMPLETED"]
        return records if done and len(records) < 4 else None

    _wait_for(some_done, first, "a first completed trial")
    workers = list(_workers_of(first.pid).values())
    first.send_signal(signal.SIGKILL)  # no chance to clean up
    first.communicate()
    before = {r["trial_id"]: r for r in _read_json(out / "tuner_results.json")}
    ended_before = {t for t, r in before.items() if r["status"] in ("COMPLETED", "FAILED")}
    assert 1 <= len(ended_before) < 4
    # Orphaned workers notice their coordinator is gone and exit.
    gone, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive

    # The re-run (a retried pipeline step) in this process: the same search, same output.
    with caplog.at_level("INFO", logger="kt_core"):
        run_search(TuningConfig.from_dict(config), os.path.join(REPO, "data", "penguins", "examples"),
                   "species", str(out), module_file=module("flaky"), save_best_model=False)
    rerun = {t for t, _ in re.findall(r"trial (\d+) -> worker (\S+)", caplog.text)}
    assert rerun and not rerun & ended_before  # ended trials were not re-run...
    after = {r["trial_id"]: r for r in _read_json(out / "tuner_results.json")}
    assert sorted(after) == ["0", "1", "2", "3"]
    for trial_id in ended_before:  # ...and their records are untouched
        assert after[trial_id] == before[trial_id]
    by_units = {r["hyperparameters"]["units"]: r for r in after.values()}
    assert sorted(by_units) == [4, 8, 13, 16]
    assert by_units[13]["status"] == "FAILED" and "13 units are unlucky" in by_units[13]["error"]
    assert all(by_units[u]["status"] == "COMPLETED" for u in (4, 8, 16))


# -- in process: hyperband with GPU placement, median stopping ------------------------

def test_hyperband_on_two_workers_pinned_to_their_gpus(tmp_path, penguin_examples, caplog):
    from kt_core.parallel.launchers import LocalLauncher
    from kt_core.search import run_search

    logs = tmp_path / "logs"
    # Two "GPUs": on this CPU-only machine each worker still sees exactly its own id.
    launcher = LocalLauncher(2, gpus=["0", "1"], log_dir=str(logs))
    config = TuningConfig.from_dict({"tuner": "hyperband", "max_epochs": 2, "factor": 2, "seed": 1,
                                     "objective": "val_accuracy", "num_parallel_trials": 2})
    with caplog.at_level("INFO", logger="kt_core"):
        result = run_search(config, penguin_examples, "species", str(tmp_path / "out"),
                            module_file=MLP, launcher=launcher, save_best_model=False)
    trials = result.trials
    assert len(trials) == 5 and len({t["trial_id"] for t in trials}) == len(trials)
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert any(t["hyperparameters"].get("tuner/trial_id") for t in trials)  # warm starts
    assert max(t["hyperparameters"]["tuner/epochs"] for t in trials) == 2
    handed = re.findall(r"trial (\d+) -> worker (local-\d)", caplog.text)
    assert sorted(t for t, _ in handed) == sorted(t["trial_id"] for t in trials)
    assert {w for _, w in handed} == {"local-0", "local-1"}  # both took part
    seen = {}
    for name in ("local-0", "local-1"):
        text = (logs / f"{name}.log").read_text()
        seen[name] = re.search(r"CUDA_VISIBLE_DEVICES='(\d*)'", text).group(1)
        assert "search over, exiting" in text
    assert seen == {"local-0": "0", "local-1": "1"}


def test_workers_that_cannot_start_end_the_search_with_an_error(tmp_path, penguin_examples):
    from kt_core.parallel.coordinator import WorkersFailed
    from kt_core.parallel.launchers import LocalLauncher
    from kt_core.search import run_search

    broken = tmp_path / "python"  # an "interpreter" whose workers die at once
    broken.write_text("#!/bin/sh\necho 'worker cannot start' >&2\nexit 1\n")
    broken.chmod(0o755)
    launcher = LocalLauncher(2, python=str(broken), max_restarts=2)
    config = TuningConfig.from_dict({"max_trials": 2, "epochs": 1, "num_parallel_trials": 2})
    with pytest.raises(WorkersFailed, match="all 2 local workers have exited and 2 restart"):
        run_search(config, penguin_examples, "species", str(tmp_path / "out"), module_file=MLP,
                   launcher=launcher, save_best_model=False)
    assert len(launcher.procs) == 4 and all(p.returncode == 1 for p in launcher.procs.values())


def test_median_stopping_runs_fewer_epochs_and_finds_the_same_best(tmp_path, penguin_examples):
    from kt_core.search import run_search

    base = {"tuner": "grid", "max_trials": 5, "epochs": 6, "seed": 1, "objective": "val_loss",
            "tune_new_entries": False,
            "hyperparameters": {"lr": {"type": "choice", "values": [0.05, 0.01, 1e-6, 3e-6, 5e-6]},
                                "num_layers": {"type": "fixed", "value": 1},
                                "units_0": {"type": "fixed", "value": 16}}}
    plain = run_search(TuningConfig.from_dict(base), penguin_examples, "species",
                       str(tmp_path / "plain"), module_file=MLP, save_best_model=False)
    stopped = run_search(
        TuningConfig.from_dict({**base, "num_parallel_trials": 2,
                                "median_stopping": {"min_completed_trials": 1, "min_epochs": 1}}),
        penguin_examples, "species", str(tmp_path / "median"), module_file=MLP,
        save_best_model=False)

    def epochs(result):
        return {t["hyperparameters"]["lr"]: len(t["metrics"][0]) for t in result.trials}

    assert sum(epochs(plain).values()) == 5 * 6
    assert sorted(epochs(stopped)) == sorted(epochs(plain))  # the same five trials ran
    assert sum(epochs(stopped).values()) < 0.75 * sum(epochs(plain).values())
    assert all(epochs(stopped)[lr] < 6 for lr in (1e-6, 3e-6, 5e-6))
    assert stopped.best_hyperparameters.values["lr"] == plain.best_hyperparameters.values["lr"]
    assert all(t["status"] == "COMPLETED" for t in stopped.trials)


# -- the Kubernetes launcher, down to the HTTP calls -----------------------------------

TUNER_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "kt-run-tuner-x7k2p", "namespace": "kt-pipelines",
                 "uid": "5f0c2a3e-1b7d-4c55-9a0e-2d3f4b5c6d7e"},
    "spec": {"serviceAccountName": "kt-tuner",
             "containers": [{"name": "main", "image": "registry.example/kt-pipelines:0.1.0",
                             "imagePullPolicy": "IfNotPresent"}],
             "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
             "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                             {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                              "effect": "NoExecute", "tolerationSeconds": 300}]},
    "status": {"phase": "Running", "podIP": "10.4.2.7"},
}


def _recording_api_client(answers):
    """The real kubernetes ApiClient with its HTTP call replaced: records (method, path,
    query, body) and answers from `answers` (no API server exists here)."""
    from kubernetes import client

    class Response:
        def __init__(self, data):
            self.data = json.dumps(data)

    class Recording(client.ApiClient):
        calls = []

        def call_api(self, resource_path, method, path_params=None, query_params=None,
                     header_params=None, body=None, post_params=None, files=None,
                     response_type=None, **kwargs):
            path = resource_path
            for key, value in (path_params or {}).items():
                path = path.replace("{%s}" % key, str(value))
            body = self.sanitize_for_serialization(body)
            self.calls.append((method, path, dict(query_params or []), body))
            data = answers(method, path, body)
            return self.deserialize(Response(data), response_type) if response_type else None

    return Recording()


def _verb(method, path):
    """(apiGroup, resource, verb) an HTTP call needs in RBAC terms."""
    parts = path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[parts.index("namespaces") + 2:]
    resource, named = rest[0], len(rest) > 1
    verb = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch",
            "GET": "get" if named else "list"}[method]
    return group, resource + ("/" + rest[2] if len(rest) > 2 else ""), verb


def test_kubernetes_launcher_creates_valid_owned_job_and_secret_and_cleans_up(caplog):
    import kubernetes_validate
    from kubernetes import client

    from kt_core.parallel.kubernetes_launcher import KubernetesLauncher
    from kt_core.parallel.launchers import LocalLauncher
    from kt_core.parallel.worker import worker_command

    state = {"pods": [], "job_status": {}}

    def left_job(name, search_id, owner_uid):  # a worker Job of an earlier run
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
            "name": name, "namespace": "kt-pipelines",
            "labels": {"app.kubernetes.io/part-of": "kt-pipelines",
                       "app.kubernetes.io/component": "tuner-worker",
                       "kt-pipelines/search": search_id},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p",
                                 "uid": owner_uid}]}}

    def answers(method, path, body):
        if method == "GET" and path.endswith("/pods/" + TUNER_POD["metadata"]["name"]):
            return TUNER_POD
        if method == "GET" and path.endswith("/pods"):
            return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": state["pods"]}
        if method == "GET" and path.endswith("/jobs"):
            # This pod's earlier run (its container restarted) left one; another search's.
            return {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": [
                left_job("kt-workers-0ld1", "0ld1", TUNER_POD["metadata"]["uid"]),
                left_job("kt-workers-0th3", "0th3", "another-pods-uid")]}
        if method == "GET" and "/jobs/" in path:
            return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                    "status": state["job_status"]}
        if method == "POST":
            return body
        return {"apiVersion": "v1", "kind": "Status", "status": "Success"}

    api = _recording_api_client(answers)
    launcher = KubernetesLauncher(
        3, {"gpus": 1, "cpu": "4", "memory": "16Gi"}, namespace="kt-pipelines",
        pod_name=TUNER_POD["metadata"]["name"], batch_api=client.BatchV1Api(api),
        core_api=client.CoreV1Api(api), poll_every_s=0)
    token, identity = auth.new_token(), auth.new_tls_identity()
    assert launcher.tls  # pods talk to the coordinator across the pod network
    address = f"{launcher.advertise_host()}:41000"
    assert address == "10.4.2.7:41000"
    with caplog.at_level("DEBUG"):
        launcher.start(address, token, "gs://bucket/root/Tuner/tuner_results/7",
                       cert_pem=identity.cert_pem)
    posts = {body["kind"]: body for method, _, _, body in api.calls if method == "POST"}
    # Before creating anything: the Job (and Secret) its own earlier run left, and only those.
    first_post = next(i for i, call in enumerate(api.calls) if call[0] == "POST")
    assert [(m, p, q) for m, p, q, _ in api.calls[:first_post] if m == "DELETE"] == [
        ("DELETE", "/apis/batch/v1/namespaces/kt-pipelines/jobs/kt-workers-0ld1",
         {"propagationPolicy": "Background"}),
        ("DELETE", "/api/v1/namespaces/kt-pipelines/secrets/kt-coordinator-0ld1", {})]
    assert "left by an earlier run of this step" in caplog.text
    listed = next(q for m, p, q, _ in api.calls if m == "GET" and p.endswith("/jobs"))
    assert listed == {"labelSelector": "app.kubernetes.io/part-of=kt-pipelines,"
                                       "app.kubernetes.io/component=tuner-worker"}
    secret, job = posts["Secret"], posts["Job"]
    for obj in (secret, job):
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        kubernetes_validate.validate(obj, "1.29", strict=True)
        assert obj["metadata"]["ownerReferences"] == [{
            "apiVersion": "v1", "kind": "Pod", "name": "kt-run-tuner-x7k2p",
            "uid": TUNER_POD["metadata"]["uid"]}]
    # The token and the certificate; never the certificate's key.
    assert secret["stringData"] == {"token": token, "cert.pem": identity.cert_pem.decode()}
    assert identity.key_pem.decode() not in json.dumps(secret) + json.dumps(job) + caplog.text
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/kt-pipelines:0.1.0"
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"},
                                      "limits": {"nvidia.com/gpu": "1", "memory": "16Gi"}}
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "kt-tuner" and pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in container["env"]}
    assert env[auth.TOKEN_ENV] == {"name": auth.TOKEN_ENV, "valueFrom": {"secretKeyRef": {
        "name": secret["metadata"]["name"], "key": "token"}}}
    assert env[auth.CERT_ENV] == {"name": auth.CERT_ENV, "valueFrom": {"secretKeyRef": {
        "name": secret["metadata"]["name"], "key": "cert.pem"}}}
    assert env[auth.WORKER_ID_ENV]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # The same worker command as the local launcher's (bar the interpreter's path).
    local = LocalLauncher(1, python="/opt/venv/bin/python")
    local.command = worker_command(local.python, address, "gs://bucket/root/Tuner/tuner_results/7")
    assert container["command"] == ["python"] + local.command[1:]
    assert token not in json.dumps(job) and token not in caplog.text

    # A preempted/failed worker pod is reported at once; a failed Job ends the search.
    state["pods"] = [{"metadata": {"name": "kt-workers-a-1-xyz"},
                      "status": {"phase": "Failed", "containerStatuses": [{
                          "name": "worker", "image": "registry.example/kt-pipelines:0.1.0",
                          "imageID": "", "ready": False, "restartCount": 0,
                          "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}]
    assert launcher.poll() == [("kt-workers-a-1-xyz", "pod failed: OOMKilled (exit code 137)")]
    assert launcher.poll() == [] and launcher.failure() is None
    state["job_status"] = {"conditions": [{"type": "Failed", "status": "True",
                                           "reason": "BackoffLimitExceeded", "message": "too many"}]}
    launcher.poll()
    assert "BackoffLimitExceeded" in launcher.failure()

    launcher.stop()
    deletes = [(path, query) for method, path, query, _ in api.calls if method == "DELETE"]
    assert deletes[2:] == [
        (f"/apis/batch/v1/namespaces/kt-pipelines/jobs/{job['metadata']['name']}",
         {"propagationPolicy": "Background"}),
        (f"/api/v1/namespaces/kt-pipelines/secrets/{secret['metadata']['name']}", {})]
    # Every call is allowed by the Role in manifests/ (and nothing more is asked for).
    with open(os.path.join(REPO, "manifests", "base", "rbac.yaml")) as f:
        role = next(d for d in yaml.safe_load_all(f) if d["kind"] == "Role")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    needed = {_verb(method, path) for method, path, _, _ in api.calls}
    assert needed <= granted, needed - granted
    assert needed == {("", "pods", "get"), ("", "pods", "list"), ("", "secrets", "create"),
                      ("", "secrets", "delete"), ("batch", "jobs", "create"),
                      ("batch", "jobs", "get"), ("batch", "jobs", "list"),
                      ("batch", "jobs", "delete")}


def test_kubernetes_launcher_needs_shared_storage():
    from kt_core.parallel.kubernetes_launcher import KubernetesLauncher

    launcher = KubernetesLauncher(2, {}, namespace="n", pod_name="p", batch_api=None, core_api=None)
    with pytest.raises(ConfigError, match="cannot read the local output directory"):
        launcher.share_module_file(MLP, "/tmp/out")
