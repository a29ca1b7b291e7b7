"""Results people can see: the text summary, the HTML report (rendered in headless
Chromium) and the TensorBoard HParams logs, on real (small) searches."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from kt_core import report, results_cli, tensorboard_logs
from kt_core.config import TuningConfig
from kt_core.search import run_search

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "data", "penguins", "examples")
PENGUIN_MODULE = os.path.join(REPO, "pipelines", "penguin_module.py")
ARTIFACTS = os.path.join(REPO, "test-artifacts")
CHROMIUM = "/usr/bin/chromium"

# units_1 appears only once a trial has 2+ layers; trial 0 (seed 7) has 1.
PENGUIN_CONFIG = {"tuner": "random", "objective": "val_accuracy", "max_trials": 4, "epochs": 2,
                  "batch_size": 16, "seed": 7}

# A grid over units x extra_layer x extra_units, where extra_units (conditional on
# extra_layer) = 0 fails to build: trials 0..4 are
# (8, F) (8, T, 4) (8, T, 0)=FAILED (16, F) (16, T, 4).
FLAKY_MODULE = textwrap.dedent('''
    import keras


    def build_model(hp):
        inputs = keras.Input(shape=(4,))
        x = keras.layers.Dense(hp.Int("units", 8, 16, step=8), activation="relu")(inputs)
        if hp.Boolean("extra_layer"):
            with hp.conditional_scope("extra_layer", [True]):
                extra = hp.Choice("extra_units", [4, 0])
                if extra == 0:
                    raise ValueError("extra_units=0: a layer needs at least one unit")
                x = keras.layers.Dense(extra, activation="relu")(x)
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
        model.compile(optimizer=keras.optimizers.Adam(0.02),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
''')
FLAKY_CONFIG = {"tuner": "grid", "objective": "val_loss", "max_trials": 5, "epochs": 2,
                "batch_size": 16, "seed": 3}


def _search(tmp_path_factory, name, config, module_file):
    out = str(tmp_path_factory.mktemp(name) / "out")
    result = run_search(TuningConfig.from_dict(config), examples_dir=EXAMPLES, label_key="species",
                        output_dir=out, module_file=module_file, save_best_model=False)
    with open(os.path.join(out, "tuner_results.json")) as f:
        records = json.load(f)
    return {"out": out, "result": result, "records": records, "objective": config["objective"]}


@pytest.fixture(scope="session")
def penguin_run(tmp_path_factory):
    return _search(tmp_path_factory, "report_penguin", PENGUIN_CONFIG, PENGUIN_MODULE)


@pytest.fixture(scope="session")
def flaky_run(tmp_path_factory):
    module_dir = tmp_path_factory.mktemp("report_flaky_module")
    module_file = module_dir / "flaky_module.py"
    module_file.write_text(FLAKY_MODULE)
    run = _search(tmp_path_factory, "report_flaky", FLAKY_CONFIG, str(module_file))
    statuses = [r["status"] for r in run["records"]]
    assert statuses.count("FAILED") == 1 and statuses.count("COMPLETED") == 4, statuses
    return run


@pytest.fixture(params=["penguin", "flaky"])
def search_run(request):
    return request.getfixturevalue(f"{request.param}_run")


# -- load + text summary ----------------------------------------------------------------

def test_load_search_finds_objective_best_and_space(search_run):
    search = report.load_search(search_run["out"])
    result = search_run["result"]
    assert search.objective == search_run["objective"]
    assert search.direction == ("max" if search_run["objective"] == "val_accuracy" else "min")
    assert search.finished and search.running == []
    assert [t["trial_id"] for t in search.trials] == [r["trial_id"] for r in search_run["records"]]
    assert search.best["trial_id"] == result.best_trial_id
    assert search.best["score"] == pytest.approx(result.best_score)
    assert search.best_values == result.best_hyperparameters.values
    assert {h["name"] for h in search.space} == set(result.best_hyperparameters.values) | {
        n for r in search_run["records"] for n in r["hyperparameters"]}


def test_objective_inferred_without_search_config(search_run, tmp_path):
    """Output dirs without search_config.json (older runs, the stock TFX Tuner): the
    objective and direction are told from the records; a file naming them wins."""
    out = str(tmp_path / "out")
    shutil.copytree(search_run["out"], out)
    for name in report.SEARCH_INFO_FILES:
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    search = report.load_search(out)
    assert search.objective_source == "inferred from trial scores"
    assert (search.objective, search.direction) == (
        search_run["objective"], "max" if search_run["objective"] == "val_accuracy" else "min")
    assert search.best["trial_id"] == search_run["result"].best_trial_id

    with open(os.path.join(out, "search_config.json"), "w") as f:
        json.dump({"objective": {"name": "val_loss", "direction": "min"}}, f)
    search = report.load_search(out)
    assert (search.objective, search.direction, search.objective_source) == (
        "val_loss", "min", "search_config.json")


def test_summary_names_best_trial_and_score(search_run):
    search = report.load_search(search_run["out"])
    result = search_run["result"]
    text = report.summary_text(search, top=2)
    assert f"Best trial: {result.best_trial_id}, {search_run['objective']} {report.fmt(result.best_score)}" in text
    assert f"Objective: {search_run['objective']}" in text
    table = text.split("scored trials:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].split()[:3] == ["rank", "trial", "score"]
    assert len(table) == 3  # header + top 2
    assert table[1].split()[:2] == ["1", result.best_trial_id]
    for name, value in result.best_hyperparameters.values.items():
        assert re.search(rf"^  {re.escape(name)} +=\s+{re.escape(repr(value))}$", text, re.M), name


def test_summary_lists_failed_trial_and_absent_hyperparameter(flaky_run):
    text = report.summary_text(report.load_search(flaky_run["out"]), top=10)
    assert "4 completed, 1 failed" in text
    assert "trial 2 FAILED: ValueError: extra_units=0" in text
    rows = {line.split()[1]: line.split() for line in text.splitlines() if re.match(r"^\d+\s+\d+\s", line)}
    assert set(rows) == {"0", "1", "3", "4"}  # scored trials only
    assert rows["0"][-1] == "-" and rows["1"][-1] == "4"  # extra_units absent / present


def test_results_command(penguin_run, capsys):
    assert results_cli.main([penguin_run["out"], "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert f"Best trial: {penguin_run['result'].best_trial_id}," in out
    assert "Top 1 of 4 scored trials" in out


def test_results_command_on_a_missing_dir(tmp_path, capsys):
    assert results_cli.main([str(tmp_path / "nothing")]) == 2
    assert "no such output directory" in capsys.readouterr().err
    assert results_cli.main([str(tmp_path)]) == 2
    assert "no tuner_results.json" in capsys.readouterr().err


def test_running_search(penguin_run, tmp_path):
    """Mid-search: results file present, no best_hyperparameters.txt, a trial running."""
    out = str(tmp_path / "out")
    shutil.copytree(penguin_run["out"], out)
    os.remove(os.path.join(out, "best_hyperparameters.txt"))
    oracle_path = os.path.join(out, "search", "oracle.json")
    with open(oracle_path) as f:
        oracle = json.load(f)
    oracle["ongoing_trials"] = {"tuner0": "99"}
    with open(oracle_path, "w") as f:
        json.dump(oracle, f)
    search = report.load_search(out)
    assert not search.finished and search.running == ["99"]
    assert search.best["trial_id"] == penguin_run["result"].best_trial_id
    text = report.summary_text(search)
    assert "still running" in text and "Running: trial 99" in text
    assert "Best hyperparameters so far" in text
    html = report.render_html(search)
    assert "still running" in html and 'class="plotly-graph-div"' in html


def test_cli_modules_import_neither_plotly_nor_tensorflow():
    code = ("import sys, kt_core.report, kt_core.results_cli, kt_core.tensorboard_logs; "
            "print(sorted(m for m in ('plotly', 'tensorflow', 'tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


# -- HTML report in headless Chromium ---------------------------------------------------

def _chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000",
           "--enable-logging=stderr", "--v=0",
           "--enable-unsafe-swiftshader",  # software WebGL (the parallel-coordinates plot) without a GPU
           "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: the report must need no network
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} is not installed (Debian: scripts/ci_system_deps.sh installs it)")
def test_html_report_renders_in_chromium(search_run, request, tmp_path):
    page = str(tmp_path / "report.html")
    report.write_html_report(search_run["out"], page)
    with open(page) as f:
        source = f.read()
    # Self-contained: plotly.js inline exactly once, nothing fetched.
    assert source.count("plotly.js v") >= 1 and len(source) > 1_000_000
    assert not re.search(r"<script[^>]+src=", source)
    markup = re.sub(r"<script[^>]*>.*?</script>", "", source, flags=re.S)
    assert not re.search(r"""(src|href)=["']https?://""", markup)

    done = _chromium(tmp_path, "--dump-dom", f"file://{page}")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    console_errors = [ln for ln in done.stderr.splitlines() if "CONSOLE" in ln and
                      ("Uncaught" in ln or "Error" in ln)]
    assert not console_errors, console_errors
    # Every plot div was drawn by plotly.js (it adds the main-svg layers).
    divs = re.split(r'<div[^>]*class="[^"]*plotly-graph-div', dom)[1:]
    assert len(divs) == 4, f"expected 4 plots, found {len(divs)}"
    for chunk in divs:
        assert 'class="main-svg"' in chunk.split("plotly-graph-div")[0]
    best_id = search_run["result"].best_trial_id
    assert re.search(rf'id="best-trial-id">{re.escape(best_id)}<', dom)
    assert f"best (trial {best_id})" in dom  # legend text plotly.js rendered into the SVG
    assert re.search(rf'<tr id="trial-{re.escape(best_id)}" class="best-row">', dom)
    for record in search_run["records"]:
        assert f'id="trial-{record["trial_id"]}"' in dom
    if any(r["status"] == "FAILED" for r in search_run["records"]):
        assert "failed (no score)" in dom and "extra_units=0" in dom

    if request.node.callspec.params["search_run"] == "penguin":
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "report.png")
        if os.path.exists(shot):
            os.remove(shot)
        done = _chromium(tmp_path, "--window-size=1280,3200", "--hide-scrollbars",
                         f"--screenshot={shot}", f"file://{page}")
        assert done.returncode == 0 and os.path.getsize(shot) > 50_000, done.stderr[-2000:]
        try:
            from PIL import Image
        except ImportError:
            return
        with Image.open(shot) as im:
            colors = im.convert("RGB").resize((320, 950)).getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 200, "the screenshot looks blank"


# -- TensorBoard HParams logs -------------------------------------------------------------

def _read_run(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0})
    acc.Reload()
    data = {}
    for content in acc.PluginTagToContent("hparams").values():
        pb = plugin_data_pb2.HParamsPluginData.FromString(content)
        data[pb.WhichOneof("data")] = pb
    scalars = {tag: [(e.step, float(_tensor_value(e.tensor_proto))) for e in acc.Tensors(tag)]
               for tag in acc.Tags()["tensors"] if not tag.startswith("_hparams_")}
    return data, scalars


def _tensor_value(proto):
    import tensorflow as tf

    return tf.make_ndarray(proto).item()


def _pb_value(value):
    kind = value.WhichOneof("kind")
    return {"number_value": value.number_value, "string_value": value.string_value,
            "bool_value": value.bool_value}[kind]


def test_tensorboard_hparams_logs(search_run):
    from tensorboard.plugins.hparams import api_pb2

    logdir = tensorboard_logs.write_hparams_logs(search_run["out"])
    assert logdir == os.path.join(search_run["out"], "tensorboard")
    # The experiment: every hyperparameter with a domain, the score and the epoch metrics.
    config, _ = _read_run(logdir)
    experiment = config["experiment"].experiment
    names = {r for rec in search_run["records"] for r in rec["hyperparameters"]}
    assert {h.name for h in experiment.hparam_infos} == names
    assert all(h.HasField("domain_discrete") or h.HasField("domain_interval")
               for h in experiment.hparam_infos)
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"score", "duration_s", search_run["objective"]} <= metric_tags

    completed = [r for r in search_run["records"] if r["status"] == "COMPLETED"]
    assert completed
    for record in search_run["records"]:
        data, scalars = _read_run(os.path.join(logdir, f"trial_{record['trial_id']}"))
        start = data["session_start_info"].session_start_info
        assert start.group_name == record["trial_id"]
        logged = {k: _pb_value(v) for k, v in start.hparams.items()}
        assert set(logged) == set(record["hyperparameters"])  # conditional ones only where present
        for name, value in record["hyperparameters"].items():
            assert logged[name] == pytest.approx(value), name
        status = data["session_end_info"].session_end_info.status
        if record["status"] == "COMPLETED":
            assert status == api_pb2.STATUS_SUCCESS
            epochs = record["metrics"][0]
            assert [s for s, _ in scalars[search_run["objective"]]] == [e["epoch"] for e in epochs]
            assert [v for _, v in scalars[search_run["objective"]]] == pytest.approx(
                [e[search_run["objective"]] for e in epochs], rel=1e-6)
            assert scalars["score"] == [(record["best_step"], pytest.approx(record["score"], rel=1e-6))]
        else:
            assert status == api_pb2.STATUS_FAILURE
            assert "score" not in scalars

    # Idempotent: a second call leaves one events file per run (and one for the config).
    before = sorted(os.listdir(os.path.join(logdir, f"trial_{completed[0]['trial_id']}")))
    tensorboard_logs.write_hparams_logs(search_run["out"])
    after = sorted(os.listdir(os.path.join(logdir, f"trial_{completed[0]['trial_id']}")))
    assert before == after
    assert len([f for f in os.listdir(logdir) if f.startswith("events.out.tfevents")]) == 1
