"""Parallel trials: one coordinator, N trial workers.

    coordinator.py        keras-tuner's oracle behind its gRPC service, plus leases, a
                          token, one writer of tuner_results.json, and a prompt end
    worker.py             the one worker command both launchers run
    client.py             the worker's remote Oracle and trial log
    launchers.py          local worker processes (GPU / CPU placement: devices.py)
    kubernetes_launcher.py  worker pods of an Indexed Job, token in a Secret
    median_stopping.py    the median stopping rule, applied across workers
    auth.py, wire.py      the per-search token; the coordinator's JSON calls

`kt_core.search.run_search` comes here when `num_parallel_trials` > 1 or
`median_stopping` is set.
"""
