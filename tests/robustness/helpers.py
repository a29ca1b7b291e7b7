"""Feeding bad input through the two ways users run a search: the `kt-pipelines`
command line and the TFX Tuner component's executor (with real artifacts)."""

import json
import os

from pipelines import cli

MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "modules")


def bad_module(name):
    return os.path.join(MODULES, name + ".py")


def tune(capsys, out_dir, examples, module_file, *extra, config=None, label="species"):
    """`kt-pipelines tune ...` in this process: (exit code, stdout, stderr)."""
    argv = ["tune", "--examples", examples, "--module-file", module_file, "--label-key", label,
            "--output-dir", str(out_dir), *extra]
    if config is not None:
        path = os.path.join(os.path.dirname(str(out_dir)), f"{os.path.basename(str(out_dir))}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        argv += ["--config", path]
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err):
    """The one line a user's mistake prints."""
    lines = [ln for ln in err.splitlines() if ln.startswith("kt-pipelines: error:")]
    assert len(lines) == 1, err
    return lines[0]


def trials(out_dir):
    with open(os.path.join(str(out_dir), "tuner_results.json")) as f:
        return json.load(f)


def by_value(records, key):
    return {r["hyperparameters"][key]: r for r in records}


def run_tuner_executor(tmp_path, examples_dir, module_file, tuning_config, label_key="species",
                       schema_text=None):
    """The TFX Tuner component's executor, invoked as TFX invokes it, on real artifacts.
    Returns the (best_hyperparameters, tuner_results) artifact directories."""
    from tfx.types import artifact_utils, standard_artifacts

    from components import common
    from components.tuner.component import TunerSpec
    from components.tuner.executor import Executor

    examples = standard_artifacts.Examples()
    examples.uri = examples_dir
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    inputs = {"examples": [examples]}
    if schema_text is not None:
        schema = standard_artifacts.Schema()
        schema.uri = str(tmp_path / "schema")
        os.makedirs(schema.uri, exist_ok=True)
        with open(os.path.join(schema.uri, "schema.pbtxt"), "w") as f:
            f.write(schema_text)
        inputs["schema"] = [schema]
    outputs = {}
    for key, channel in TunerSpec.OUTPUTS.items():  # every output the component declares
        artifact = channel.type()
        artifact.uri = str(tmp_path / key)
        outputs[key] = [artifact]
    exec_properties = {
        common.MODULE_FILE_KEY: common.check_module_file(module_file),
        common.LABEL_KEY_KEY: label_key,
        common.TUNING_CONFIG_KEY: common.tuning_config_param(tuning_config),
    }
    Executor().Do(inputs, outputs, exec_properties)
    return outputs["best_hyperparameters"][0].uri, outputs["tuner_results"][0].uri
