"""Artifact types of our own: the search report as an HTML page the KFP v2 UI renders."""

from tfx.types.value_artifact import ValueArtifact

# The schema title the KFP v2 UI renders as a web page (the artifact's URI is the file).
KFP_HTML_TITLE = "system.HTML"


class HtmlReport(ValueArtifact):
    """A self-contained HTML page. A value artifact, so its URI is the page itself (not a
    folder), which is what the KFP UI reads for `system.HTML` artifacts."""

    # Also the import path TFX compiles for it (a KFP schema title: pkg.Class).
    TYPE_NAME = "components.HtmlReport"

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")
