"""Reading a search's output directory back, for people: a text summary and an
HTML report.

`load_search(output_dir)` gathers what the search left behind:

* `tuner_results.json` (required): one record per finished trial, see `results`;
* `best_hyperparameters.txt` (optional: absent while the search still runs);
* `search_config.json` (optional): the objective's name and direction;
* the keras-tuner project dir (`search/` by default, the one holding
  `oracle.json`): the full search space, the trials still running, and each
  trial's metric directions (`trial_*/trial.json`).

keras-tuner does not save the objective's name in `oracle.json`, so unless the
caller or `search_config.json` names it, it is inferred from the records:
a trial's score is its objective's best per-epoch value (averaged over
executions), so the objective is the metric whose per-epoch values reproduce
every completed trial's score.

`write_html_report(output_dir, path)` writes one self-contained HTML file
(plotly.js inline, so it opens offline). plotly is imported only there.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import html
import json
import math
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

from kt_core import results as results_lib

NUMERIC_TYPES = ("Int", "Float")
INTERNAL_PREFIX = "tuner/"  # keras-tuner's per-trial bookkeeping (Hyperband), not searched
FINISHED_OK = "COMPLETED"
_MIN_HINTS = ("loss", "error", "crossentropy", "mse", "mae", "mape", "msle", "hinge",
              "divergence", "poisson", "cosine_similarity_loss")


RESULTS_FILE = getattr(results_lib, "RESULTS_FILE", "tuner_results.json")
BEST_HP_FILE = getattr(results_lib, "BEST_HP_FILE", "best_hyperparameters.txt")
# Files a search may write next to its results that name the objective
# ({"objective": {"name": ..., "direction": ...}} or {"objective": "name", ...}).
SEARCH_INFO_FILES = tuple(dict.fromkeys(
    [getattr(results_lib, "SEARCH_CONFIG_FILE", "search_config.json"), "search_config.json",
     "search_summary.json"]))


class ReportError(ValueError):
    """The output directory holds no search results to report on."""


@dataclasses.dataclass
class Search:
    """What one search output directory says, in plain Python values."""

    output_dir: str
    trials: List[Dict[str, Any]]          # tuner_results.json records, in the order they ended
    objective: Optional[str]              # e.g. "val_accuracy"; None if it cannot be told
    direction: str                        # "max" or "min"
    space: List[Dict[str, Any]]           # [{"name", "type", "config"}] in search-space order
    best_values: Optional[Dict[str, Any]]  # best_hyperparameters.txt values, None while running
    running: List[str]                    # trial ids keras-tuner has started but not finished
    project_dir: Optional[str]            # the keras-tuner project dir, if found
    objective_source: str = "unknown"     # how the objective was found

    # -- derived --------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """The search wrote its best hyperparameters (it does so once, at the end)."""
        return self.best_values is not None

    @property
    def scored(self) -> List[Dict[str, Any]]:
        """Completed trials with a score, best first (ties: the earlier trial)."""
        done = [t for t in self.trials if t.get("status") == FINISHED_OK and _is_num(t.get("score"))]
        return sorted(done, key=lambda t: -t["score"] if self.direction == "max" else t["score"])

    @property
    def best(self) -> Optional[Dict[str, Any]]:
        scored = self.scored
        if not scored:
            return None
        if self.best_values is not None:  # on a tie, the trial keras-tuner picked
            tied = [t for t in scored if t["score"] == scored[0]["score"]]
            for t in tied:
                if _same_values(t.get("hyperparameters") or {}, self.best_values):
                    return t
        return scored[0]

    @property
    def all_hp_names(self) -> List[str]:
        """Space order first, then any name only the records know."""
        names = [h["name"] for h in self.space]
        for t in self.trials:
            for name in (t.get("hyperparameters") or {}):
                if name not in names:
                    names.append(name)
        return names

    @property
    def hp_names(self) -> List[str]:
        """The tuned hyperparameters: without keras-tuner's own bookkeeping values
        (Hyperband's `tuner/epochs`, `tuner/bracket`, ...)."""
        return [n for n in self.all_hp_names if not n.startswith(INTERNAL_PREFIX)]

    def hp_spec(self, name: str) -> Optional[Dict[str, Any]]:
        for h in self.space:
            if h["name"] == name:
                return h
        return None

    def hp_kind(self, name: str) -> str:
        """"numeric" (scatter, interval) or "categorical" (box, discrete values)."""
        spec = self.hp_spec(name)
        if spec is not None:
            return "numeric" if spec["type"] in NUMERIC_TYPES else "categorical"
        values = [v for v in (t.get("hyperparameters", {}).get(name) for t in self.trials) if v is not None]
        return "numeric" if values and all(_is_num(v) for v in values) else "categorical"

    def status_counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for t in self.trials:
            counts[t.get("status") or "UNKNOWN"] = counts.get(t.get("status") or "UNKNOWN", 0) + 1
        return counts


# -- loading ------------------------------------------------------------------------

def load_search(output_dir: str, objective: Optional[str] = None,
                direction: Optional[str] = None) -> Search:
    """Reads a search output dir; works while the search is still running.

    `objective`/`direction` override what would otherwise be inferred.
    """
    results_path = _join(output_dir, RESULTS_FILE)
    if not _exists(results_path):
        if not _exists(output_dir):
            raise ReportError(f"no such output directory: {output_dir}")
        raise ReportError(f"no {RESULTS_FILE} in {output_dir}: the search has not "
                          f"finished a trial yet, or this is not a search output directory")
    try:
        trials = json.loads(_read(results_path))
    except ValueError as e:
        raise ReportError(f"{results_path} is not valid JSON: {e}") from e
    if not isinstance(trials, list):
        raise ReportError(f"{results_path}: expected a list of trial records")
    trials = [t for t in trials if isinstance(t, dict) and "trial_id" in t]
    for t in trials:
        t["trial_id"] = str(t["trial_id"])
        if not isinstance(t.get("hyperparameters"), dict):  # stock TFX records: flat values only
            t["hyperparameters"] = {k: v for k, v in t.items() if k not in _RECORD_KEYS}
        if not t.get("status"):
            t["status"] = FINISHED_OK if _is_num(t.get("score")) else "UNKNOWN"

    best_values, best_space = None, []
    best_path = _join(output_dir, BEST_HP_FILE)
    if _exists(best_path):
        try:
            best = json.loads(_read(best_path))
            best_values = dict(best.get("values") or {})
            best_space = list(best.get("space") or [])
        except (ValueError, AttributeError):
            best_values = None  # being rewritten, or not ours: the records still tell

    info_file, info = _search_info(output_dir)
    project_name = (info.get("config") or {}).get("project_name") if isinstance(info.get("config"), dict) else None
    project_dir = _find_project_dir(output_dir, project_name)
    oracle: Dict[str, Any] = {}
    if project_dir:
        try:
            oracle = json.loads(_read(_join(project_dir, "oracle.json")))
        except ValueError:
            oracle = {}
    space_config = (oracle.get("hyperparameters") or {}).get("space") or best_space
    space = [_space_entry(h) for h in space_config if isinstance(h, dict)]

    finished_ids = {t["trial_id"] for t in trials}
    running = [str(tid) for tid in (oracle.get("ongoing_trials") or {}).values()
               if str(tid) not in finished_ids]

    source = "given"
    if objective is None:
        objective, found_direction, source = _objective_from_info(info_file, info)
        direction = direction or found_direction
    if objective is None:
        objective, found_direction = _infer_objective(trials, best_values, project_dir)
        direction = direction or found_direction
        source = "inferred from trial scores" if objective else "unknown"
    if direction not in ("min", "max"):
        direction = (_metric_direction_from_trials(project_dir, objective)
                     or _direction_from_name(objective))
    return Search(output_dir=output_dir, trials=trials, objective=objective, direction=direction,
                  space=space, best_values=best_values, running=running,
                  project_dir=project_dir, objective_source=source)


_RECORD_KEYS = {"trial_id", "score", "status", "hyperparameters", "best_step", "metrics",
                "duration_s", "error"}


def _space_entry(h: Dict[str, Any]) -> Dict[str, Any]:
    config = dict(h.get("config") or {})
    return {"name": config.get("name", "?"), "type": h.get("class_name", "?"), "config": config}


def _find_project_dir(output_dir: str, project_name: Optional[str] = None) -> Optional[str]:
    """The keras-tuner project dir: the configured project name, `search/` (the
    default), else any subdir holding an oracle.json (the most recently written)."""
    for name in ([project_name] if isinstance(project_name, str) and project_name else []) + ["search"]:
        if _exists(_join(output_dir, name, "oracle.json")):
            return _join(output_dir, name)
    found = _glob(_join(output_dir, "*", "oracle.json"))
    if not found:
        return None
    found.sort(key=_mtime)
    return found[-1].rsplit("/", 1)[0] if _is_url(found[-1]) else os.path.dirname(found[-1])


def _search_info(output_dir: str) -> Tuple[Optional[str], Dict[str, Any]]:
    """What a search recorded about itself next to its results (search_config.json)."""
    for name in SEARCH_INFO_FILES:
        path = _join(output_dir, name)
        if _exists(path):
            try:
                info = json.loads(_read(path))
            except ValueError:
                continue
            if isinstance(info, dict):
                return name, info
    return None, {}


def _objective_from_info(name: Optional[str], info: Dict[str, Any]) -> Tuple[Optional[str], Optional[str], str]:
    objective = info.get("objective")
    if isinstance(objective, dict) and isinstance(objective.get("name"), str):
        return objective["name"], objective.get("direction"), name or "unknown"
    if isinstance(objective, str):
        return objective, info.get("direction"), name or "unknown"
    return None, None, "unknown"


def _infer_objective(trials, best_values, project_dir) -> Tuple[Optional[str], Optional[str]]:
    """The metric (and direction) whose per-epoch values reproduce every score."""
    scored = [t for t in trials if t.get("status") == FINISHED_OK and _is_num(t.get("score"))
              and t.get("metrics")]
    if not scored:
        return None, None
    names: List[str] = []
    for t in scored:
        for execution in t["metrics"]:
            for epoch in execution:
                names.extend(k for k in epoch if k != "epoch" and k not in names)
    matches: List[Tuple[str, str]] = []
    for name in names:
        for direction in ("max", "min"):
            if all(_close(_trial_value(t, name, direction), t["score"]) for t in scored):
                matches.append((name, direction))
    if not matches:
        return None, None
    # Prefer validation metrics (what searches usually optimize), then a direction
    # keras-tuner's trial files or the metric's name agree with.
    matched_names = [n for n, _ in matches]
    name = sorted(dict.fromkeys(matched_names), key=lambda n: (not n.startswith("val_"), matched_names.index(n)))[0]
    directions = [d for n, d in matches if n == name]
    if len(directions) == 1:
        return name, directions[0]
    return name, (_direction_from_best(trials, best_values)
                  or _metric_direction_from_trials(project_dir, name)
                  or _direction_from_name(name))


def _trial_value(trial, name, direction) -> Optional[float]:
    """The trial's score if `name` were the objective: best epoch, mean over executions."""
    bests = []
    for execution in trial.get("metrics") or []:
        values = [e.get(name) for e in execution if _is_num(e.get(name))]
        if values:
            bests.append(max(values) if direction == "max" else min(values))
    return statistics.fmean(bests) if bests else None


def _direction_from_best(trials, best_values) -> Optional[str]:
    if not best_values:
        return None
    scores = [t["score"] for t in trials if t.get("status") == FINISHED_OK and _is_num(t.get("score"))]
    for t in trials:
        if _is_num(t.get("score")) and _same_values(t.get("hyperparameters") or {}, best_values):
            if t["score"] == max(scores) and t["score"] != min(scores):
                return "max"
            if t["score"] == min(scores) and t["score"] != max(scores):
                return "min"
    return None


def _metric_direction_from_trials(project_dir, name) -> Optional[str]:
    """keras-tuner's own direction for the metric, from any trial.json."""
    if not project_dir or not name:
        return None
    for path in sorted(_glob(_join(project_dir, "trial_*", "trial.json")))[:20]:
        try:
            metrics = json.loads(_read(path)).get("metrics", {}).get("metrics", {})
        except (ValueError, AttributeError):
            continue
        direction = (metrics.get(name) or {}).get("direction")
        if direction in ("min", "max"):
            return direction
    return None


def _direction_from_name(name: Optional[str]) -> str:
    base = (name or "").lower()
    for prefix in ("val_", "weighted_"):
        if base.startswith(prefix):
            base = base[len(prefix):]
    return "min" if any(h in base for h in _MIN_HINTS) or base in ("ce",) else "max"


# -- plain text --------------------------------------------------------------------

def fmt(value: Any) -> str:
    """A value as people read it: 4 significant digits for floats."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def _fmt_duration(seconds: Any) -> str:
    if not _is_num(seconds):
        return "-"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def headline(search: Search) -> str:
    counts = search.status_counts()
    parts = [f"{n} {s.lower()}" for s, n in sorted(counts.items())]
    state = ("search finished" if search.finished
             else "search still running or interrupted (no best_hyperparameters.txt yet)")
    running = f", {len(search.running)} running" if search.running else ""
    objective = (f"{search.objective} ({search.direction})" if search.objective
                 else f"unknown (direction assumed {search.direction})")
    return (f"Search {search.output_dir}: {len(search.trials)} trials "
            f"({', '.join(parts) or 'none'}){running}; {state}\n"
            f"Objective: {objective}")


def summary_text(search: Search, top: int = 5) -> str:
    """The top trials as a table, then the best hyperparameters; plain text."""
    lines = [headline(search), ""]
    scored = search.scored
    names = search.hp_names
    if scored:
        shown = scored[:max(top, 0)] if top is not None else scored
        lines.append(f"Top {len(shown)} of {len(scored)} scored trials:")
        header = ["rank", "trial", "score", "status", "duration"] + names
        rows = [[str(i + 1), t["trial_id"], fmt(t["score"]), t.get("status", "-"),
                 _fmt_duration(t.get("duration_s"))]
                + [fmt(t["hyperparameters"].get(n)) for n in names]
                for i, t in enumerate(shown)]
        lines.extend(_text_table(header, rows))
        lines.append("")
    else:
        lines.append("No trial has completed with a score yet.")
        lines.append("")

    best = search.best
    if best is not None:
        what = search.objective or "score"
        exact = "" if fmt(best["score"]) == repr(best["score"]) else f" ({best['score']!r})"
        lines.append(f"Best trial: {best['trial_id']}, {what} {fmt(best['score'])}{exact}")
        values = search.best_values if search.best_values is not None else best["hyperparameters"]
        label = "Best hyperparameters" + ("" if search.best_values is not None
                                          else " so far (search not finished)")
        lines.append(f"{label}:")
        width = max((len(k) for k in values), default=0)
        ordered = search.all_hp_names
        for name in [n for n in ordered if n in values] + [n for n in values if n not in ordered]:
            lines.append(f"  {name.ljust(width)} = {values[name]!r}")
    failed = [t for t in search.trials if t.get("status") in ("FAILED", "INVALID")]
    if failed:
        if lines[-1]:
            lines.append("")
        lines.append(f"{len(failed)} trial(s) failed or were invalid:")
        for t in failed[-5:]:
            lines.append(f"  trial {t['trial_id']} {t.get('status')}: {_one_line(t.get('error'), 150)}")
    if search.running:
        if lines[-1]:
            lines.append("")
        lines.append("Running: trial " + ", ".join(search.running))
    return "\n".join(lines).rstrip() + "\n"


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    out.extend("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    return out


def _one_line(text: Any, limit: int) -> str:
    text = " ".join(str(text or "-").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def space_description(spec: Dict[str, Any]) -> str:
    """One hyperparameter's domain as text, e.g. "8 .. 64 step 8" or "relu | tanh"."""
    c, kind = spec["config"], spec["type"]
    if kind in NUMERIC_TYPES:
        text = f"{fmt(c.get('min_value'))} .. {fmt(c.get('max_value'))}"
        if c.get("step") not in (None, 1) or (kind == "Float" and c.get("step") is not None):
            text += f" step {fmt(c.get('step'))}"
        if c.get("sampling") not in (None, "linear"):
            text += f" ({c['sampling']})"
        return text
    if kind == "Choice":
        return " | ".join(fmt(v) for v in c.get("values", [])) + (" (ordered)" if c.get("ordered") else "")
    if kind == "Boolean":
        return "False | True"
    if kind == "Fixed":
        return f"fixed {fmt(c.get('value'))}"
    return json.dumps({k: v for k, v in c.items() if k not in ("name", "conditions")}, default=str)


def space_conditions(spec: Dict[str, Any]) -> str:
    parts = []
    for cond in spec["config"].get("conditions") or []:
        cfg = cond.get("config", {}) if isinstance(cond, dict) else {}
        values = cfg.get("values", [])
        parts.append(f"{cfg.get('name', '?')} in [{', '.join(fmt(v) for v in values)}]")
    return " and ".join(parts)


# -- HTML ------------------------------------------------------------------------------

def write_html_report(output_dir: str, path: str, search: Optional[Search] = None) -> str:
    """Writes the self-contained HTML report on `output_dir` to `path`; returns `path`."""
    if search is None:
        search = load_search(output_dir)
    text = render_html(search)
    parent = os.path.dirname(os.path.abspath(path)) if "://" not in path else None
    if parent:
        os.makedirs(parent, exist_ok=True)
    _write(path, text)
    return path


def render_html(search: Search) -> str:
    figures = build_figures(search)
    blocks: Dict[str, str] = {}
    first = True
    config = {"displaylogo": False, "responsive": True}
    for key, fig in figures.items():
        blocks[key] = fig.to_html(full_html=False, include_plotlyjs=first, config=config,
                                  div_id=f"kt-{key}", default_height=f"{fig.layout.height or 450}px")
        first = False

    e = html.escape
    best = search.best
    counts = search.status_counts()
    title = f"keras-tuner search report: {search.output_dir}"
    state = ("finished" if search.finished
             else "still running or interrupted &mdash; no best_hyperparameters.txt yet; "
                  "the best trial below is the best so far")
    objective = (f"<b>{e(search.objective)}</b> ({e(search.direction)}imize)" if search.objective
                 else f"unknown (could not be told from the records; assuming {e(search.direction)})")
    chips = "".join(f'<span class="chip st-{e(s.lower())}">{e(s.lower())} {n}</span>'
                    for s, n in sorted(counts.items()))
    if search.running:
        chips += f'<span class="chip st-running">running {len(search.running)}</span>'

    parts = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>keras-tuner search report</h1>
<div class="meta"><code>{e(search.output_dir)}</code> &middot; generated {e(_now())}</div>
<div class="meta">Objective: {objective} &middot; search {state}</div>
<div class="chips">{len(search.trials)} trials {chips}</div></header>
"""]

    # Best trial.
    parts.append('<section id="best"><h2>Best trial</h2>')
    if best is None:
        parts.append("<p>No trial has completed with a score yet.</p>")
    else:
        values = search.best_values if search.best_values is not None else best["hyperparameters"]
        rows = "".join(f"<tr><th>{e(n)}</th><td>{e(fmt(values[n]))}</td></tr>"
                       for n in [n for n in search.all_hp_names if n in values]
                       + [n for n in values if n not in search.all_hp_names])
        parts.append(
            f'<div class="best"><div class="big">trial <span id="best-trial-id">{e(best["trial_id"])}</span>'
            f'</div><div class="score">{e(search.objective or "score")} = '
            f'<b id="best-score">{e(fmt(best["score"]))}</b></div>'
            f'<div class="small">duration {e(_fmt_duration(best.get("duration_s")))} &middot; '
            f'best epoch {e(fmt(best.get("best_step")))}</div>'
            f'<table class="kv">{rows}</table></div>')
    parts.append("</section>")

    if "progress" in blocks:
        parts.append(f'<section><h2>Best score so far</h2>{blocks["progress"]}'
                     f'<p class="note">Trials in the order they finished; failed trials (no score) '
                     f'are marked &times; at the level of the worst score.</p></section>')
    if "curves" in blocks:
        parts.append(f'<section><h2>{e(search.objective or "objective")} per epoch</h2>{blocks["curves"]}</section>')
    if "hparams" in blocks:
        parts.append(f'<section><h2>Score by hyperparameter</h2>{blocks["hparams"]}'
                     f'<p class="note">Completed trials only; the best trial is green. A hyperparameter absent from a trial '
                     f'(conditional, or added to the space later) is not plotted for it.</p></section>')
    if "parallel" in blocks:
        parts.append(f'<section><h2>Parallel coordinates</h2>{blocks["parallel"]}'
                     f'<p class="note">One line per completed trial, coloured by score; drag along an '
                     f'axis to filter. &ldquo;absent&rdquo; marks a hyperparameter the trial did not '
                     f'have.</p></section>')

    parts.append(_trials_table(search))
    parts.append(_space_table(search))
    parts.append("</body></html>\n")
    return "".join(parts)


def _trials_table(search: Search) -> str:
    e = html.escape
    best = search.best
    scored = search.scored
    order = scored + [t for t in search.trials if not any(t is s for s in scored)]
    names = search.all_hp_names
    any_error = any(t.get("error") for t in search.trials)
    head = "".join(f"<th>{e(h)}</th>" for h in
                   ["#", "trial", "status", search.objective or "score", "duration", "best epoch", "epochs"]
                   + names + (["error"] if any_error else []))
    rows = []
    for i, t in enumerate(order):
        rank = str(i + 1) if i < len(scored) else ""
        epochs = max((len(ex) for ex in t.get("metrics") or []), default=0)
        cls = ' class="best-row"' if best is not None and t is best else ""
        status = t.get("status") or "-"
        cells = [rank, t["trial_id"], status, fmt(t.get("score")), _fmt_duration(t.get("duration_s")),
                 fmt(t.get("best_step")), str(epochs)]
        cells += [fmt(t["hyperparameters"][n]) if n in t["hyperparameters"] else "" for n in names]
        tds = "".join(f"<td>{e(c)}</td>" if j != 2 else f'<td class="st-{e(c.lower())}">{e(c)}</td>'
                      for j, c in enumerate(cells))
        err = t.get("error")
        if any_error:
            tds += (f'<td class="err" title="{e(str(err))}">{e(_one_line(err, 80))}</td>' if err else "<td></td>")
        rows.append(f'<tr id="trial-{e(t["trial_id"])}"{cls}>{tds}</tr>')
    absent_note = ("<p class=\"note\">An empty hyperparameter cell: the trial did not have that "
                   "hyperparameter (conditional, or added to the search space later).</p>")
    return (f'<section id="trials"><h2>All trials ({len(search.trials)})</h2>'
            f'<div class="scroll"><table class="grid"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{absent_note}</section>')


def _space_table(search: Search) -> str:
    e = html.escape
    if not search.space:
        return ('<section id="space"><h2>Search space</h2><p>No search space found '
                '(no oracle.json or best_hyperparameters.txt).</p></section>')
    rows = []
    for spec in search.space:
        seen = sum(1 for t in search.trials if spec["name"] in t["hyperparameters"])
        default = spec["config"].get("default")
        rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in [
            spec["name"], spec["type"], space_description(spec),
            fmt(default) if default is not None else "", space_conditions(spec),
            f"{seen} / {len(search.trials)}"]) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ["name", "type", "values", "default", "only when", "in trials"])
    return (f'<section id="space"><h2>Search space ({len(search.space)} hyperparameters)</h2>'
            f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f'</table></section>')


def build_figures(search: Search) -> Dict[str, Any]:
    """The report's plotly figures, keyed by section; only the ones with data."""
    figures: Dict[str, Any] = {}
    if search.trials:
        figures["progress"] = _progress_figure(search)
    curves = _curves_figure(search)
    if curves is not None:
        figures["curves"] = curves
    if search.scored and search.hp_names:
        figures["hparams"] = _hparams_figure(search)
        figures["parallel"] = _parallel_figure(search)
    return figures


def _progress_figure(search: Search):
    import plotly.graph_objects as go

    better = max if search.direction == "max" else min
    xs, ys, texts, best_y = [], [], [], []
    fail_x, fail_text = [], []
    elapsed, best_so_far = 0.0, None
    for i, t in enumerate(search.trials, start=1):
        elapsed += float(t.get("duration_s") or 0)
        score = t.get("score")
        if t.get("status") == FINISHED_OK and _is_num(score):
            best_so_far = score if best_so_far is None else better(best_so_far, score)
            xs.append(i)
            ys.append(score)
            texts.append(f"trial {t['trial_id']}<br>score {fmt(score)}<br>"
                         f"~{elapsed:.0f}s of trial time so far<br>{_hp_hover(t)}")
        else:
            fail_x.append(i)
            fail_text.append(f"trial {t['trial_id']} {t.get('status')}<br>"
                             f"{html.escape(_one_line(t.get('error'), 100))}")
        best_y.append(best_so_far)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(range(1, len(search.trials) + 1)), y=best_y, mode="lines",
                             line=dict(shape="hv", width=3, color="#1f77b4"), name="best so far",
                             hoverinfo="skip", connectgaps=False))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="trial score",
                             marker=dict(size=9, color="#ff7f0e"), text=texts, hoverinfo="text"))
    best = search.best
    if best is not None:
        bx = search.trials.index(best) + 1
        fig.add_trace(go.Scatter(x=[bx], y=[best["score"]], mode="markers", name=f"best (trial {best['trial_id']})",
                                 marker=dict(size=16, symbol="star", color="#2ca02c",
                                             line=dict(width=1, color="black")), hoverinfo="skip"))
    if fail_x:
        worst = (min(ys) if search.direction == "max" else max(ys)) if ys else 0
        fig.add_trace(go.Scatter(x=fail_x, y=[worst] * len(fail_x), mode="markers", name="failed (no score)",
                                 marker=dict(size=11, symbol="x", color="#d62728"),
                                 text=fail_text, hoverinfo="text"))
    fig.update_layout(height=380, margin=dict(l=60, r=20, t=20, b=50),
                      xaxis=dict(title=dict(text="trial, in the order finished"), dtick=1 if len(search.trials) <= 30 else None),
                      yaxis=dict(title=dict(text=search.objective or "score")),
                      legend=dict(orientation="h", y=1.08, x=0))
    return fig


def _curves_figure(search: Search):
    name = search.objective
    if not name:
        return None
    import plotly.graph_objects as go

    fig = go.Figure()
    best = search.best
    any_trace = False
    for t in search.trials:
        executions = t.get("metrics") or []
        by_epoch: Dict[int, List[float]] = {}
        for execution in executions:
            for i, e in enumerate(execution):
                if _is_num(e.get(name)):
                    by_epoch.setdefault(int(e.get("epoch", i)), []).append(e[name])
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        values = [statistics.fmean(by_epoch[x]) for x in epochs]
        is_best = best is not None and t is best
        ok = t.get("status") == FINISHED_OK
        fig.add_trace(go.Scatter(
            x=epochs, y=values, mode="lines+markers",
            name=f"trial {t['trial_id']}" + ("" if ok else f" ({t.get('status', '?').lower()})"),
            line=dict(width=4 if is_best else 1.5, dash=None if ok else "dot"),
            marker=dict(size=6 if is_best else 4), opacity=1.0 if is_best else 0.7,
            hovertemplate=f"trial {t['trial_id']}<br>epoch %{{x}}<br>{name} %{{y:.4g}}<extra></extra>"))
        any_trace = True
    if not any_trace:
        return None
    max_epoch = max((max(tr.x) for tr in fig.data), default=0)
    fig.update_layout(height=380, margin=dict(l=60, r=20, t=20, b=50),
                      xaxis=dict(title=dict(text="epoch"), dtick=1 if max_epoch <= 20 else None),
                      yaxis=dict(title=dict(text=name)),
                      showlegend=len(search.trials) <= 25)
    return fig


def _hparams_figure(search: Search):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = search.hp_names
    scored = search.scored
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    titles = []
    for n in names:
        have = sum(1 for t in scored if n in t["hyperparameters"])
        titles.append(n if have == len(scored) else f"{n} ({have} of {len(scored)} trials)")
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.08, vertical_spacing=min(0.35 / rows, 0.2))
    best = search.best
    for k, n in enumerate(names):
        r, c = k // cols + 1, k % cols + 1
        have = [t for t in scored if n in t["hyperparameters"] and t["hyperparameters"][n] is not None]
        ys = [t["score"] for t in have]
        hover = [f"trial {t['trial_id']}<br>{html.escape(n)} = {html.escape(fmt(t['hyperparameters'][n]))}"
                 f"<br>score {fmt(t['score'])}" for t in have]
        colors = ["#2ca02c" if best is not None and t is best else "#1f77b4" for t in have]
        if search.hp_kind(n) == "numeric":
            fig.add_trace(go.Scatter(x=[t["hyperparameters"][n] for t in have], y=ys, mode="markers",
                                     marker=dict(size=9, color=colors, line=dict(width=0.5, color="white")),
                                     text=hover, hoverinfo="text", showlegend=False), row=r, col=c)
            fig.update_xaxes(row=r, col=c, **_numeric_axis(search.hp_spec(n),
                                                           [t["hyperparameters"][n] for t in have]))
        else:
            order = _category_order(search, n)
            xs = [fmt(t["hyperparameters"][n]) for t in have]
            for label in dict.fromkeys(xs):  # a box where a category has enough trials for one
                cat = [y for x, y in zip(xs, ys) if x == label]
                if len(cat) >= 4:
                    fig.add_trace(go.Box(x=[label] * len(cat), y=cat, boxpoints=False,
                                         line=dict(color="#9aa5b1"), fillcolor="rgba(31,119,180,0.08)",
                                         hoverinfo="skip", showlegend=False, name=label), row=r, col=c)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers",
                                     marker=dict(size=9, color=colors, line=dict(width=0.5, color="white")),
                                     text=hover, hoverinfo="text", showlegend=False), row=r, col=c)
            fig.update_xaxes(type="category", categoryorder="array",
                             categoryarray=[fmt(v) for v in order], row=r, col=c)
        fig.update_yaxes(title=dict(text=search.objective or "score") if c == 1 else None, row=r, col=c)
    fig.update_layout(height=max(320, 280 * rows), margin=dict(l=60, r=20, t=50, b=40))
    return fig


def _numeric_axis(spec: Optional[Dict[str, Any]], values: List[float]) -> Dict[str, Any]:
    """x-axis settings showing where in the space's range the trials fell."""
    config = (spec or {}).get("config", {})
    lo, hi = config.get("min_value"), config.get("max_value")
    lo = min([v for v in [lo] + values if _is_num(v)], default=0)
    hi = max([v for v in [hi] + values if _is_num(v)], default=1)
    if config.get("sampling") in ("log", "reverse_log") and lo > 0:
        a, b = math.log10(lo), math.log10(hi)
        pad = max(b - a, 0.5) * 0.06
        return dict(type="log", range=[a - pad, b + pad], dtick=1 if b - a >= 2 else "D2")
    pad = max(hi - lo, 1e-12) * 0.06
    axis: Dict[str, Any] = dict(range=[lo - pad, hi + pad])
    step = config.get("step") or (1 if (spec or {}).get("type") == "Int" else None)
    if _is_num(step) and step > 0 and (hi - lo) / step <= 10:
        axis.update(tick0=lo, dtick=step)
    return axis


def _category_order(search: Search, name: str) -> List[Any]:
    spec = search.hp_spec(name)
    if spec is not None:
        if spec["type"] == "Choice":
            return list(spec["config"].get("values", []))
        if spec["type"] == "Boolean":
            return [False, True]
        if spec["type"] == "Fixed":
            return [spec["config"].get("value")]
    seen: List[Any] = []
    for t in search.trials:
        v = t["hyperparameters"].get(name)
        if v is not None and v not in seen:
            seen.append(v)
    try:
        return sorted(seen)
    except TypeError:
        return seen


def _parallel_figure(search: Search):
    import plotly.graph_objects as go

    scored = search.scored
    dims = [_parallel_dimension(search, n, scored) for n in search.hp_names]
    scores = [t["score"] for t in scored]
    dims.append(dict(label=search.objective or "score", values=scores))
    fig = go.Figure(go.Parcoords(
        line=dict(color=scores, colorscale="Viridis", reversescale=search.direction == "min",
                  showscale=True, colorbar=dict(title=dict(text=search.objective or "score"))),
        dimensions=dims, labelangle=0, labelfont=dict(size=13), tickfont=dict(size=11)))
    fig.update_layout(height=450, margin=dict(l=70, r=70, t=60, b=30))
    return fig


def _parallel_dimension(search: Search, name: str, scored: List[Dict[str, Any]]) -> Dict[str, Any]:
    raw = [t["hyperparameters"].get(name) for t in scored]
    missing = any(v is None for v in raw)
    if search.hp_kind(name) == "numeric" and all(_is_num(v) for v in raw if v is not None):
        spec = search.hp_spec(name) or {"config": {}}
        log = spec["config"].get("sampling") in ("log", "reverse_log") and all(
            v > 0 for v in raw if v is not None)
        lo = spec["config"].get("min_value")
        hi = spec["config"].get("max_value")
        present = [v for v in raw if v is not None]
        lo = min([lo] + present) if _is_num(lo) else min(present, default=0)
        hi = max([hi] + present) if _is_num(hi) else max(present, default=1)
        tr = (lambda v: math.log10(v)) if log and lo > 0 else (lambda v: float(v))
        tlo, thi = tr(lo), tr(hi)
        if thi == tlo:
            thi = tlo + 1
        step = spec["config"].get("step") or (1 if spec.get("type") == "Int" else None)
        if not log and _is_num(step) and step > 0 and spec.get("type") == "Int":
            n_steps = int(round((hi - lo) / step))
            picks = range(n_steps + 1) if n_steps <= 8 else sorted({round(n_steps * i / 4) for i in range(5)})
            ticks = [float(lo + k * step) for k in picks]
        else:
            ticks = [tlo + (thi - tlo) * i / 4 for i in range(5)]
        ticktext = [fmt(10 ** x if log and lo > 0 else (int(round(x)) if spec.get("type") == "Int" else x))
                    for x in ticks]
        values = [tr(v) if v is not None else None for v in raw]
        low_end = tlo
        if missing:
            low_end = tlo - (thi - tlo) * 0.2
            values = [low_end if v is None else v for v in values]
            ticks = [low_end] + ticks
            ticktext = ["absent"] + ticktext
        return dict(label=name, values=values, range=[low_end, thi], tickvals=ticks, ticktext=ticktext)
    order = [fmt(v) for v in _category_order(search, name)]
    for v in raw:
        if v is not None and fmt(v) not in order:
            order.append(fmt(v))
    ticktext = (["absent"] if missing else []) + order
    index = {label: i for i, label in enumerate(ticktext)}
    values = [index["absent"] if v is None else index[fmt(v)] for v in raw]
    return dict(label=name, values=values, tickvals=list(range(len(ticktext))), ticktext=ticktext,
                range=[0, max(len(ticktext) - 1, 1)])


def _hp_hover(trial: Dict[str, Any]) -> str:
    return "<br>".join(f"{html.escape(k)} = {html.escape(fmt(v))}"
                       for k, v in (trial.get("hyperparameters") or {}).items())


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;margin:0 auto;
 max-width:1200px;padding:16px 24px;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:0 0 8px;color:#333}
header{border-bottom:2px solid #1f77b4;padding-bottom:8px;margin-bottom:12px}
.meta{color:#555;font-size:.9em;margin:2px 0}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:12px 16px;margin:12px 0}
.chips{margin-top:6px;font-size:.9em}.chip{display:inline-block;border-radius:10px;padding:1px 9px;
 margin-left:6px;background:#eee}
.chip.st-completed{background:#dff0d8}.chip.st-failed,.chip.st-invalid{background:#f6d5d5}
.chip.st-running{background:#fcf3cf}
.best .big{font-size:1.4em;font-weight:600}.best .score{font-size:1.15em;margin:4px 0}
.small{color:#666;font-size:.85em;margin-bottom:6px}
table{border-collapse:collapse;font-size:.88em}
table.kv th{text-align:left;padding:2px 14px 2px 0;font-weight:500;color:#444}
table.kv td{font-family:ui-monospace,Menlo,Consolas,monospace}
table.grid th,table.grid td{border-bottom:1px solid #eee;padding:3px 9px;text-align:left;white-space:nowrap}
table.grid thead th{background:#f2f5f9;position:sticky;top:0}
tr.best-row{background:#eaf7e6;font-weight:600}
td.st-failed,td.st-invalid{color:#c0392b;font-weight:600}td.st-completed{color:#2d7a2d}
td.err{color:#a33;max-width:380px;overflow:hidden;text-overflow:ellipsis}
.scroll{overflow-x:auto}.note{color:#666;font-size:.85em;margin:6px 0 0}
"""


# -- small helpers ------------------------------------------------------------------

def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _close(a: Optional[float], b: Optional[float]) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _same_values(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    return all(_close(a[k], b[k]) if _is_num(a[k]) and _is_num(b[k]) else a[k] == b[k] for k in a)


def _now() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


# Local paths through os (fast, no TensorFlow import); URLs (gs://...) through tf.io.gfile.

def _is_url(path: str) -> bool:
    return "://" in path


def _join(*parts: str) -> str:
    if _is_url(parts[0]):
        return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])
    return os.path.join(*parts)


def _exists(path: str) -> bool:
    if _is_url(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def _read(path: str) -> str:
    if _is_url(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path) as f:
            return f.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(path: str, text: str) -> None:
    if _is_url(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _glob(pattern: str) -> List[str]:
    if _is_url(pattern):
        import tensorflow as tf

        return list(tf.io.gfile.glob(pattern))
    return glob.glob(pattern)


def _mtime(path: str) -> float:
    if _is_url(path):
        return 0.0
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0
