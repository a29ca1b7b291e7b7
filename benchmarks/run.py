"""The benchmark harness: `python -m benchmarks.run [--case NAME ...] [--quick]`.

Runs every case (or the ones named), each in a fresh Python process so that no case
inherits another's memory, threads or TensorFlow state, and writes the results to
bench-results.json at the repository root: a list of
`{"case", "ours_s", "baseline_s", "ratio", "details"}` where the baseline was measured
in the same run on the same work and `details.ratio_meaning` says what the ratio is.
A full run rewrites the file; a run of named cases replaces only their entries.

Cases come from the modules below: a module's `CASES` dict ({name: function}), or for
modules written to a list of names (bench_parallel), functions with those names. A
case function takes `quick` (tiny sizes, for tests) when it declares it; otherwise
KT_BENCH_QUICK=1 is in its environment. It returns one result dict or a list of them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(REPO, "bench-results.json")
MODULES = ("bench_trials", "bench_data", "bench_memory", "bench_pipeline", "bench_cli")
# Modules that may not exist yet (another change adds them): {module: case names}.
OPTIONAL = {"bench_parallel": ("parallel_speedup", "coordinator_handout")}
KEYS = ("case", "ours_s", "baseline_s", "ratio", "details")
CASE_TIMEOUT_S = 1500


def discover() -> Dict[str, Callable]:
    """{case name: function}, in running order."""
    cases: Dict[str, Callable] = {}
    for name in MODULES:
        cases.update(importlib.import_module(f"benchmarks.{name}").CASES)
    for name, expected in OPTIONAL.items():
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"benchmarks.{name}":
                print(f"benchmarks.{name}: cannot import ({e}); its cases are skipped",
                      file=sys.stderr)
            continue
        except Exception as e:  # noqa: BLE001 - a broken optional module skips its cases
            print(f"benchmarks.{name}: cannot import ({type(e).__name__}: {e}); its cases "
                  "are skipped", file=sys.stderr)
            continue
        found = dict(getattr(module, "CASES", {}) or {})
        for case in expected:
            for attr in (case, f"case_{case}", f"bench_{case}", f"run_{case}"):
                if case not in found and callable(getattr(module, attr, None)):
                    found[case] = getattr(module, attr)
        cases.update(found)
    return cases


def call_case(fn: Callable, quick: bool):
    params = inspect.signature(fn).parameters
    if "quick" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return fn(quick=quick)
    return fn()


def normalize(case: str, raw: Any) -> List[Dict[str, Any]]:
    """A case's return value as a list of well-formed entries (ratio filled in)."""
    entries = raw if isinstance(raw, list) else [raw]
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise TypeError(f"case {case} returned {type(entry).__name__}, expected a dict")
        entry = dict(entry)
        entry.setdefault("case", case)
        entry.setdefault("details", {})
        if entry.get("ratio") is None and entry.get("ours_s") is not None and entry.get("baseline_s"):
            entry["ratio"] = round(entry["ours_s"] / entry["baseline_s"], 4)
        for key in KEYS:
            entry.setdefault(key, None)
        out.append({**{k: entry[k] for k in KEYS},
                    **{k: v for k, v in entry.items() if k not in KEYS}})
    return out


def _conditions(quick: bool) -> Dict[str, Any]:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "load_average_at_start": load, "quick": quick,
            "python": platform.python_version()}


def run_child(case: str, out: str, quick: bool) -> None:
    """Inside the case's own process: run it and write its entries."""
    fn = discover()[case]
    entries = normalize(case, call_case(fn, quick))
    with open(out, "w") as f:
        json.dump(entries, f)


def run_case(case: str, quick: bool, log_dir: str) -> List[Dict[str, Any]]:
    conditions = _conditions(quick)
    out = os.path.join(log_dir, f"{case}.json")
    log_path = os.path.join(log_dir, f"{case}.log")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
    if quick:
        env["KT_BENCH_QUICK"] = "1"
    cmd = [sys.executable, "-m", "benchmarks.run", "--child", case, "--child-out", out]
    if quick:
        cmd.append("--quick")
    t0 = time.perf_counter()
    error = None
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  timeout=CASE_TIMEOUT_S)
            if proc.returncode != 0:
                error = f"exit status {proc.returncode}"
        except subprocess.TimeoutExpired:
            error = f"timed out after {CASE_TIMEOUT_S} s"
    elapsed = time.perf_counter() - t0
    if error is None and os.path.exists(out):
        with open(out) as f:
            entries = json.load(f)
    else:
        with open(log_path) as f:
            tail = f.read()[-4000:]
        entries = [{"case": case, "ours_s": None, "baseline_s": None, "ratio": None,
                    "details": {"error": error or "no result written", "log_tail": tail}}]
    for entry in entries:
        entry["details"] = {**entry.get("details", {}), **conditions,
                            "case_wall_s": round(elapsed, 1)}
    return entries


def _summary(entry: Dict[str, Any]) -> str:
    d = entry.get("details") or {}
    if d.get("error"):
        return f"{entry['case']}: ERROR {d['error']}"

    def fmt(x):
        return "-" if x is None else f"{x:.3f}"

    goal = d.get("goal")
    met = d.get("goal_met")
    verdict = "" if goal is None else f"  goal {goal}: {'met' if met else 'NOT met'}"
    return (f"{entry['case']}: ours {fmt(entry['ours_s'])} s, baseline {fmt(entry['baseline_s'])} s,"
            f" ratio {fmt(entry['ratio'])}{verdict}")


def write_results(path: str, entries: List[Dict[str, Any]], replace_all: bool) -> None:
    kept: List[Dict[str, Any]] = []
    if not replace_all and os.path.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
            names = {e["case"] for e in entries}
            kept = [e for e in previous if isinstance(e, dict) and e.get("case") not in names]
        except (OSError, ValueError):
            kept = []
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(kept + entries, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--case", action="append", default=[],
                        help="run only this case (repeatable, or comma-separated)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the cases run, not how fast")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="results file (JSON)")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", dest="child_out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run_child(args.child, args.child_out, args.quick)
        return 0
    cases = discover()
    if args.list:
        print("\n".join(cases))
        return 0
    wanted = [c for item in args.case for c in item.split(",") if c]
    unknown = [c for c in wanted if c not in cases]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; cases: {list(cases)}")
    selected = wanted or list(cases)

    results: List[Dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kt-bench-") as log_dir:
        for case in selected:
            print(f"[bench] {case} ...", flush=True)
            entries = run_case(case, args.quick, log_dir)
            results.extend(entries)
            write_results(args.output, results, replace_all=not wanted)
            for entry in entries:
                print(f"[bench] {_summary(entry)}", flush=True)
    print(f"[bench] {len(selected)} case(s) in {time.perf_counter() - t0:.0f} s; "
          f"results: {args.output}", flush=True)
    return 1 if any((e.get("details") or {}).get("error") for e in results) else 0


if __name__ == "__main__":
    sys.exit(main())
