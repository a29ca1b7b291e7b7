"""Parallel trials: speedup of 2 workers over 1, and the coordinator's hand-out latency.

parallel_speedup: the same search (same seed, so the same trials) run by the parallel
  path with 1 worker and with 2 workers, end to end (run_search: data, preflight,
  worker start-up, trials); two runs per side, alternating, the faster of each counts. Also
  reported: the steady-state speedup (first hand-out to "search finished"). (The
  single-process path on the same trials took about as long as 1 worker, 77 s vs 72 s;
  it is left out to keep `make bench` within its 15 minutes.)
coordinator_handout: one real coordinator (keras-tuner RandomSearch oracle, token,
  leases, durable state on disk) and 64 simulated workers over real gRPC (2 client
  processes x 32 coroutines), each running instant one-epoch trials as fast as it can
  with the calls a real worker makes; time from asking for a trial to getting it (for
  our workers that is the call that ends one trial, carrying its epoch, and brings the
  next); also, per side, a worker's whole wait between two trials (every call it makes
  after one trial ends until it holds the next: keras-tuner's worker makes four, ours
  one, or two with median stopping). Baseline: keras-tuner's own chief servicer
  (distribute/oracle_chief.py, its single-thread gRPC server) under the same load.
  Also reported: the transport floor, the same workers against a gRPC server with no
  oracle behind it (what gRPC and the simulation alone cost on these 2 cores), ours
  over TLS, as worker pods reach it, and ours with median stopping on (workers then
  also send each epoch as it ends).

Run alone: `python -m benchmarks.bench_parallel [--case NAME] [--quick]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time

from benchmarks import common

SPEEDUP_GOAL = 1.8
HANDOUT_GOAL_S = 0.050


# -- parallel_speedup ------------------------------------------------------------------

def _search_config(trials, epochs, workers):
    from kt_core.config import TuningConfig

    # The whole space declared up front (tune_new_entries: false): the oracle then draws
    # the same values whatever order trials end in, so every run tries the same trials.
    units = {"type": "int", "min_value": 8, "max_value": 64, "step": 8}
    return TuningConfig.from_dict({
        "tuner": "random", "objective": "val_accuracy", "max_trials": trials, "epochs": epochs,
        "batch_size": 16, "seed": 7, "overwrite": True, "num_parallel_trials": workers,
        "tune_new_entries": False,
        "hyperparameters": {"num_layers": {"type": "int", "min_value": 1, "max_value": 3},
                            "units_0": units, "units_1": units, "units_2": units,
                            "learning_rate": {"type": "float", "min_value": 1e-3,
                                              "max_value": 1e-1, "sampling": "log"}}})


class _Marks:
    """Times of the coordinator's first hand-out and of its "search finished" line."""

    def __init__(self):
        import logging

        self.first_handout = self.finished = None
        self.handler = logging.Handler()
        self.handler.emit = self._emit

    def _emit(self, record):
        message = record.getMessage()
        if self.first_handout is None and re.match(r"trial \S+ -> worker", message):
            self.first_handout = time.perf_counter()
        elif message.startswith("search finished"):
            self.finished = time.perf_counter()

    def __enter__(self):
        import logging

        logging.getLogger("kt_core").addHandler(self.handler)
        logging.getLogger("kt_core").setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        import logging

        logging.getLogger("kt_core").removeHandler(self.handler)


def _run(config, examples, out, launcher=None):
    from kt_core.search import run_search

    with common.stdout_to_stderr(), _Marks() as marks, common.Clock() as clock:
        result = run_search(config, examples_dir=examples, label_key=common.LABEL, output_dir=out,
                            module_file=common.PENGUIN_MODULE, save_best_model=False,
                            launcher=launcher)
    steady = (marks.finished - marks.first_handout
              if marks.first_handout and marks.finished else None)
    return {"s": clock.s, "steady_s": steady,
            "values": [r["hyperparameters"] for r in result.trials],
            "completed": sum(r["status"] == "COMPLETED" for r in result.trials)}


def parallel_speedup(quick: bool = False):
    common.quiet_tensorflow()
    from kt_core.parallel.launchers import LocalLauncher

    trials, epochs = (4, 2) if quick else (10, 12)
    rows = (600, 200) if quick else (1600, 400)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kt-bench-parallel-") as tmp:
        examples = common.write_blob_examples(os.path.join(tmp, "examples"), *rows)

        def run(workers, name):
            launcher = LocalLauncher(1) if workers == 1 else None  # 1 worker: parallel path too
            return _run(_search_config(trials, epochs, workers), examples,
                        os.path.join(tmp, name), launcher=launcher)

        # Alternating runs, two per side, the fastest of each side counting: a burst of load
        # from other processes on the shared host then hurts neither side alone. (Until
        # 2026-11-29 the 2-worker side ran once against the 1-worker side's best of two; the
        # 2-worker run, which needs both cores whole, is the one such bursts hurt most.)
        order = ["two", "one"] if quick else ["one", "two", "one", "two"]
        runs = {"one": [], "two": []}
        for i, name in enumerate(order):
            runs[name].append(run(1 if name == "one" else 2, f"{name}{i}"))
    one = min(runs["one"], key=lambda r: r["s"])
    two = min(runs["two"], key=lambda r: r["s"])
    load_after = os.getloadavg()
    same = _same(one["values"], two["values"])
    ratio = one["s"] / two["s"]
    return common.result(
        "parallel_speedup", two["s"], one["s"], ratio=ratio,
        ratio_meaning="1-worker time / 2-worker time for the same trials, end to end "
                      "(higher is better)",
        goal=f"ratio >= {SPEEDUP_GOAL}", goal_met=ratio >= SPEEDUP_GOAL,
        steady_state_s={"one_worker": _r(one["steady_s"]), "two_workers": _r(two["steady_s"])},
        steady_state_speedup=(_r(one["steady_s"] / two["steady_s"], 4)
                              if one["steady_s"] and two["steady_s"] else None),
        runs_s={name: [round(r["s"], 3) for r in rs] for name, rs in runs.items()},
        same_trials=same, trials=trials, epochs=epochs, batch_size=16,
        completed={"one_worker": one["completed"], "two_workers": two["completed"]},
        train_rows=rows[0], eval_rows=rows[1], cpus=len(os.sched_getaffinity(0)),
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in load_after],
        model="pipelines/penguin_module.py (1-3 Dense layers, Adam)")


def _r(x, digits=3):
    return None if x is None else round(x, digits)


def _same(a, b):
    key = lambda vs: sorted(json.dumps(v, sort_keys=True) for v in vs)  # noqa: E731
    return key(a) == key(b)


# -- coordinator_handout -------------------------------------------------------------

def _client_process(address, token, calls, worker_ids, ready, go, queue, cert=None):
    """Simulated workers (coroutines on one grpc.aio event loop) in one process, each
    running instant one-epoch trials with the calls a real worker makes, as fast as it
    can. `calls`: "ours" (kt_core.parallel.client): EndTrialAndNext, which ends the trial,
    carries its epoch and brings the next (CreateTrial only for the first); "ours_each_epoch"
    (ours with median stopping on): ReportEpoch, then EndTrialAndNext; "stock"
    (keras-tuner's BaseTuner with its OracleClient): CreateTrial, GetTrial, UpdateTrial,
    EndTrial.
    On a cluster workers run on other machines; coroutines keep what the simulation
    itself costs off the coordinator's cores as far as possible (threads with blocking
    stubs cost about twice the CPU per call). Our workers send the token and their id as
    metadata, exactly what auth.authenticated_channel adds to every call."""
    import asyncio

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.engine import trial as trial_module

    from kt_core.parallel import auth, wire

    service = protos.get_service()
    TrialStatus = trial_module.TrialStatus
    running, stopped = TrialStatus.to_proto(TrialStatus.RUNNING), TrialStatus.to_proto(TrialStatus.STOPPED)
    completed = TrialStatus.to_proto(TrialStatus.COMPLETED)

    stock = calls == "stock"

    async def work(worker_id, latencies, between):
        metadata = None if stock else ((auth._AUTH_KEY, f"Bearer {token}"),
                                       (auth.WORKER_KEY, worker_id))
        if cert:
            credentials, options = auth.tls_channel_args(cert)
            channel = grpc.aio.secure_channel(address, credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(address)
        async with channel:
            stub = protos.get_service_grpc().OracleStub(channel)
            report_epoch = wire.stub(channel, wire.REPORT_EPOCH)
            end_and_next = wire.stub(channel, wire.END_TRIAL_AND_NEXT)
            options = dict(timeout=600, metadata=metadata)
            ask = lambda: stub.CreateTrial(service.CreateTrialRequest(tuner_id=worker_id),  # noqa: E731
                                           wait_for_ready=True, **options)
            t0, ended_at = time.perf_counter(), None
            trial = (await ask()).trial
            while trial.status != stopped:
                if trial.status != running:  # IDLE: ask again
                    t0 = time.perf_counter()
                    trial = (await ask()).trial
                    continue
                now = time.perf_counter()
                latencies.append(now - t0)
                if ended_at is not None:  # every call since the last trial ended
                    between.append(now - ended_at)
                ended_at = now  # an instant trial: over as soon as it is handed out
                if stock:
                    trial = (await stub.GetTrial(service.GetTrialRequest(trial_id=trial.trial_id),
                                                 **options)).trial
                    await stub.UpdateTrial(service.UpdateTrialRequest(
                        trial_id=trial.trial_id, metrics={"loss": 0.5}, step=0), **options)
                    trial.status = completed
                    await stub.EndTrial(service.EndTrialRequest(trial=trial), **options)
                    t0 = time.perf_counter()
                    trial = (await ask()).trial
                    continue
                epochs = [{"execution": 0, "epoch": 0, "logs": {"loss": 0.5}}]
                if calls == "ours_each_epoch":
                    await report_epoch({"trial_id": trial.trial_id, "epochs": epochs}, **options)
                    epochs = []
                observation = trial.metrics.metrics["loss"].observations.add(step=0)
                observation.value.append(0.5)
                trial.status = completed
                t0 = time.perf_counter()
                trial = (await end_and_next(wire.EndAndNext(service.EndTrialRequest(trial=trial),
                                                            epochs), **options)).trial

    async def main():
        latencies, between = [], []
        ready.put(len(worker_ids))
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        cpu = time.process_time()
        await asyncio.gather(*(work(w, latencies, between) for w in worker_ids))
        queue.put((latencies, between, time.time(), time.process_time() - cpu))

    asyncio.run(main())


def _oracle(directory, trials):
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 10**6)
    hp.Float("lr", 1e-5, 1.0, sampling="log")
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="loss", max_trials=trials,
                                                    hyperparameters=hp, seed=1)
    oracle._set_project_dir(directory, "search")
    oracle.verbose = 0
    return oracle


def _serve_ours(directory, trials, workers, tls=False, median_stopping=False):
    from kt_core import results
    from kt_core.parallel import auth
    from kt_core.parallel.coordinator import Coordinator
    from kt_core.parallel.median_stopping import MedianStoppingRule

    oracle = _oracle(directory, trials)
    recorder = results.TrialRecorder(os.path.join(directory, "tuner_results.json"))
    coordinator = Coordinator(oracle, recorder, auth.new_token(),
                              tls=auth.new_tls_identity() if tls else None,
                              median_rule=MedianStoppingRule("min") if median_stopping else None)
    port = coordinator.start()
    return (f"127.0.0.1:{port}", coordinator.token, coordinator.stop,
            lambda: len(oracle.end_order), coordinator.tls.cert_pem if tls else None)


def _serve_stock(directory, trials, workers):
    """keras-tuner's chief, as distribute/oracle_chief.start_server builds it."""
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    oracle = _oracle(directory, trials)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(OracleServicer(oracle), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return f"127.0.0.1:{port}", "", lambda: server.stop(0), lambda: len(oracle.end_order), None


def _serve_floor(directory, trials, workers):
    """No oracle: a grpc.aio server answering our workers' calls with trials made in
    advance. What gRPC and the simulated workers alone cost on this machine."""
    import asyncio
    import threading

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.engine import trial as trial_module

    from kt_core.parallel import wire

    service = protos.get_service()
    space = _oracle(directory, trials).get_space()
    TrialStatus = trial_module.TrialStatus
    ready = [trial_module.Trial(space, trial_id=str(i), status=TrialStatus.RUNNING).to_proto()
             for i in range(trials)]
    stopped = trial_module.Trial(space, status=TrialStatus.STOPPED).to_proto()
    ended, bound, started = [0], {}, threading.Event()

    class Servicer(protos.get_service_grpc().OracleServicer):
        async def CreateTrial(self, request, context):
            return service.CreateTrialResponse(trial=ready.pop() if ready else stopped)

        async def EndTrialAndNext(self, request, context):
            ended[0] += 1
            return await self.CreateTrial(request, context)

        async def ReportEpoch(self, request, context):
            return {"stop": False, "leased": True}

    def run():
        async def serve():
            server = grpc.aio.server()
            servicer = Servicer()
            protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
            server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(wire.SERVICE, {
                wire.REPORT_EPOCH: wire.handler(wire.REPORT_EPOCH, servicer.ReportEpoch),
                wire.END_TRIAL_AND_NEXT: wire.handler(wire.END_TRIAL_AND_NEXT,
                                                      servicer.EndTrialAndNext)})])
            bound["port"] = server.add_insecure_port("127.0.0.1:0")
            bound["stop"] = asyncio.Event()
            await server.start()
            started.set()
            await bound["stop"].wait()
            await server.stop(0)

        loop = asyncio.new_event_loop()
        bound["loop"] = loop
        loop.run_until_complete(serve())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait()

    def stop():
        bound["loop"].call_soon_threadsafe(bound["stop"].set)
        thread.join()

    return f"127.0.0.1:{bound['port']}", "", stop, lambda: ended[0], None


def _handout_run(server, workers, trials, processes):
    """server: "ours", "ours_each_epoch" (ours, workers with median stopping on),
    "ours_tls", "stock" or "floor"."""
    ctx = multiprocessing.get_context("spawn")
    calls = server if server in ("stock", "ours_each_epoch") else "ours"  # what workers send
    serve = {"ours": _serve_ours,
             # ours with median stopping on (its workers report each epoch)
             "ours_each_epoch": functools.partial(_serve_ours, median_stopping=True),
             # ours as worker pods reach it: over TLS
             "ours_tls": functools.partial(_serve_ours, tls=True),
             "stock": _serve_stock, "floor": _serve_floor}[server]
    with tempfile.TemporaryDirectory(prefix="kt-bench-handout-") as tmp:
        address, token, stop, ended, cert = serve(tmp, trials, workers)
        queue, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        ids = [f"sim-{i}" for i in range(workers)]
        procs = [ctx.Process(target=_client_process,
                             args=(address, token, calls, ids[p::processes], ready, go, queue,
                                   cert))
                 for p in range(processes)]
        for p in procs:
            p.start()
        for _ in procs:  # every client process has imported what it needs
            ready.get(timeout=600)
        start, server_cpu = time.time(), _cpu()
        go.set()
        latencies, between, ends, client_cpu = [], [], [], 0.0
        for _ in procs:
            mine, waits, end, cpu = queue.get(timeout=900)
            latencies.extend(mine)
            between.extend(waits)
            ends.append(end)
            client_cpu += cpu
        server_cpu = _cpu() - server_cpu
        for p in procs:
            p.join()
        wall = max(ends) - start
        done = ended()
        stop()
    latencies.sort()
    return {"median_s": statistics.median(latencies),
            "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "between_trials_median_s": statistics.median(between) if between else None,
            "handouts": len(latencies), "trials_ended": done, "wall_s": wall,
            "trials_per_s": done / wall, "server_cpu_s": server_cpu,
            "simulated_workers_cpu_s": client_cpu}


def _cpu():
    t = os.times()
    return t.user + t.system


def coordinator_handout(quick: bool = False):
    common.quiet_tensorflow()
    import kt_core.parallel.coordinator  # noqa: F401  (imports outside the CPU readings)

    workers, processes = 64, 2
    trials = 256 if quick else 640
    load_before = os.getloadavg()
    ours = _handout_run("ours", workers, trials, processes)
    stock = _handout_run("stock", workers, trials, processes)
    floor = _handout_run("floor", workers, trials, processes)
    over_tls = _handout_run("ours_tls", workers, trials, processes)
    each_epoch = _handout_run("ours_each_epoch", workers, trials, processes)
    # For scale: one worker alone, nobody to queue behind.
    alone = {"ours": _handout_run("ours", 1, 50, 1)["median_s"],
             "stock_keras_tuner": _handout_run("stock", 1, 50, 1)["median_s"]}
    load_after = os.getloadavg()
    return common.result(
        "coordinator_handout", ours["median_s"], stock["median_s"],
        ratio=stock["median_s"] / ours["median_s"],
        ratio_meaning="stock keras-tuner chief median hand-out time / ours (higher is better)",
        goal=f"median <= {HANDOUT_GOAL_S * 1000:.0f} ms", goal_met=ours["median_s"] <= HANDOUT_GOAL_S,
        ours={k: _r(v, 4) for k, v in ours.items()},
        stock_keras_tuner={k: _r(v, 4) for k, v in stock.items()},
        transport_floor={**{k: _r(v, 4) for k, v in floor.items()},
                         "what": "the same simulated workers against a grpc.aio server that "
                                 "answers with trials made in advance (no oracle, no state)"},
        ours_over_tls={**{k: _r(v, 4) for k, v in over_tls.items()},
                       "what": "ours as worker pods reach it (TLS); the goal is judged on "
                               "`ours`, local workers' plaintext loopback"},
        ours_median_stopping={**{k: _r(v, 4) for k, v in each_epoch.items()},
                              "what": "ours with median stopping on: workers also send each "
                                      "epoch as it ends (ReportEpoch), to hear whether to stop"},
        one_worker_alone_median_s={k: _r(v, 4) for k, v in alone.items()},
        simulated_workers=workers, client_processes=processes, trials=trials,
        trial="instant, one epoch, with the calls each side's worker makes: ours "
              "EndTrialAndNext (which carries the epoch and brings the next trial; with median "
              "stopping, ReportEpoch first); keras-tuner's CreateTrial, GetTrial, UpdateTrial, "
              "EndTrial",
        cpus=len(os.sched_getaffinity(0)),
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in load_after])


CASES = {"parallel_speedup": parallel_speedup, "coordinator_handout": coordinator_handout}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_parallel")
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    results = [CASES[name](quick=args.quick) for name in (args.case or list(CASES))]
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
