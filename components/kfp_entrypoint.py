"""The container entrypoint for our components in a compiled KFP v2 / Vertex pipeline.

TFX's `kubeflow_v2_run_executor`, plus one mapping: an output typed `system.HTML` (so the
KFP UI renders the search report) is read back as our `HtmlReport` artifact class. TFX
resolves artifact classes from schema titles before it imports the executor, so the
mapping has to be registered here, first.
"""

from tfx.orchestration.kubeflow.v2 import compiler_utils

from components.artifacts import KFP_HTML_TITLE

compiler_utils.TITLE_TO_CLASS_PATH.setdefault(KFP_HTML_TITLE, "components.HtmlReport")


def main():
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entry

    app.run(tfx_entry.main, flags_parser=tfx_entry._parse_flags)


if __name__ == "__main__":
    main()
