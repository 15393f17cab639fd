"""The run report as one HTML page: a template, one function per section.

Every string from the data (ids, titles, reasons) goes through ``html.escape``; the
figures are PNGs, embedded as data URIs and also returned to be written beside the page.
"""

import base64
import datetime
import html
import statistics
import string
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from components.ranking_evaluator import metrics as metrics_lib
from components.ranking_evaluator import slices as slices_lib
from pipeline import summary as summary_lib
from pipeline.report import charts
from pipeline.report.sources import ReportInputs

NOT_AVAILABLE = "Not available"
SCORERS = (("model", "this run"), ("popularity", "popularity"),
           ("baseline", "previous model"))
SLICE_METRICS = ("HR@10", "NDCG@10")
HISTORY_SHOWN = 10   # the example user's most recent items shown
DATA_STATS = (("num_users_kept", "users"), ("num_users_dropped_short", "users dropped (too short)"),
              ("num_items", "items"), ("num_interactions_kept", "events (interactions kept)"),
              ("num_interactions", "events in the log"), ("min_interactions", "min interactions"),
              ("max_history_length", "max history length (0: all)"))

PAGE = string.Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Run report: $pipeline</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222;
       padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
.meta { color: #555; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 0.25em 0.7em; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.hit { background: #e5f5e0; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
.figures img { max-width: 100%; border: 1px solid #eee; }
.columns { display: flex; flex-wrap: wrap; gap: 3em; }
.na { color: #a33; font-style: italic; }
.note { color: #555; font-size: 0.92em; }
.blessed { color: #2a7d2a; font-weight: bold; }
.not-blessed { color: #a33; font-weight: bold; }
</style>
</head>
<body>
<header>
<h1>Run report: $pipeline</h1>
<p class="meta">$meta</p>
<nav>$nav</nav>
</header>
$sections
</body>
</html>
""")

Figures = Dict[str, bytes]   # file name -> PNG


def esc(value) -> str:
  return html.escape(str(value), quote=True)


def not_available(reason: str) -> str:
  return f'<p class="na">{NOT_AVAILABLE}: {esc(reason)}</p>'


def _number(value) -> str:
  if isinstance(value, float):
    return f"{value:.4f}"
  return esc(value)


def _table(header: Sequence[str], rows: Sequence[Sequence], numeric_from: int = 1) -> str:
  """A table; cells from column ``numeric_from`` on are numbers (floats to 4 places)."""
  def cell(tag: str, i: int, value) -> str:
    css = ' class="num"' if i >= numeric_from else ""
    text = _number(value) if i >= numeric_from else esc(value)
    return f"<{tag}{css}>{text}</{tag}>"
  lines = ["<table>", "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"]
  for row in rows:
    lines.append("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
  lines.append("</table>")
  return "\n".join(lines)


def _figure(figures: Figures, name: str, png: bytes, alt: str) -> str:
  """Records ``png`` as ``name`` and returns its <img>, embedded as a data URI."""
  figures[name] = png
  data = base64.b64encode(png).decode("ascii")
  return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}" title="{esc(name)}">'


def data_section(inputs: ReportInputs, figures: Figures) -> str:
  data = inputs.data
  if data is None:
    return not_available(inputs.missing.get("data", "no sequence data"))
  rows = [(label, data.stats[key]) for key, label in DATA_STATS if key in data.stats]
  lengths = (f"{min(data.lengths)} to {max(data.lengths)}, "
             f"median {statistics.median(data.lengths):g}")
  cut = data.stats.get("max_history_length")
  cut_note = f" Histories were cut to their last {esc(cut)} items." if cut else ""
  parts = [_table(("", "value"), rows),
           f'<p class="note">Sequence lengths and item popularity count the kept users\' '
           f'test sequences (history and held-out item): {len(data.lengths)} users, '
           f'{len(data.item_counts)} items, lengths {esc(lengths)}.{cut_note} Head, torso '
           'and tail items each hold a third of the interactions.</p>',
           '<div class="figures">',
           _figure(figures, "sequence_lengths.png", charts.sequence_lengths(data.lengths),
                   "histogram of sequence lengths"),
           _figure(figures, "item_popularity.png",
                   charts.item_popularity([c for _, c in data.item_counts], data.bands),
                   "item popularity curve"),
           "</div>"]
  return "\n".join(parts)


def _best_epoch(history: Dict[str, Sequence[float]]) -> str:
  metric = next((k for k in sorted(history) if k.startswith("val_NDCG")), None)
  if metric is None or not history[metric]:
    return ""
  values = list(history[metric])
  best = max(range(len(values)), key=lambda i: values[i])
  return f"; best {esc(metric)} {values[best]:.4f} at epoch {best + 1}"


def training_section(inputs: ReportInputs, figures: Figures) -> str:
  if not inputs.histories:
    return not_available(inputs.missing.get("training", "no training history"))
  parts = []
  for stage, history in inputs.histories.items():
    epochs = max((len(v) for v in history.values()), default=0)
    parts.append(f"<h3>{esc(stage.capitalize())}</h3>")
    parts.append(f'<p class="note">{epochs} epoch(s){_best_epoch(history)}. '
                 "Losses are per batch, averaged over the epoch; validation on the eval split."
                 "</p>")
    parts.append(_figure(figures, f"training_{stage}.png",
                         charts.training_curves(history), f"{stage} curves"))
  return "\n".join(parts)


def _scorers(by_scorer: Dict) -> List[Tuple[str, str]]:
  return [(key, label) for key, label in SCORERS if by_scorer.get(key)]


def _overall(evaluation: Dict) -> Dict[str, Dict[str, float]]:
  """Scorer -> every overall metric (accuracy and beyond accuracy)."""
  return {key: summary_lib.scorer_metrics(evaluation, key)
          for key, _ in SCORERS if evaluation.get(key)}


def _gating(gating: Dict) -> str:
  if not gating:
    return ""
  blessed = gating.get("blessed")
  verdict = ('<span class="blessed">BLESSED</span>' if blessed
             else '<span class="not-blessed">NOT BLESSED</span>')
  value = gating.get("value")
  shown = f" ({esc(gating.get('metric'))} = {value:.4f})" if isinstance(value, float) else ""
  reasons = "".join(f"<li>{esc(r)}</li>" for r in gating.get("reasons", []))
  return f"<p>Blessing: {verdict}{shown}</p>" + (f"<ul>{reasons}</ul>" if reasons else "")


def metrics_section(inputs: ReportInputs, figures: Figures) -> str:
  evaluation = inputs.evaluation
  if not evaluation:
    return not_available(inputs.missing.get("evaluation", "no evaluator output"))
  overall = _overall(evaluation)
  scorers = _scorers(overall)
  names = [n for n in summary_lib.METRIC_NAMES if n in overall.get("model", {})]
  rows = [[name] + [overall[key].get(name, "-") for key, _ in scorers] for name in names]
  users = overall.get("model", {}).get(metrics_lib.NUM_USERS_KEY, "?")
  parts = [f'<p class="note">Full ranking over the whole catalogue on split '
           f'"{esc(evaluation.get("split", "test"))}", {esc(users)} users; a user\'s own '
           "history items are never counted as hits.</p>",
           _table(["metric"] + [label for _, label in scorers], rows)]
  if "baseline" not in overall:
    parts.append('<p class="note">No previous served model to compare with (none was '
                 "blessed before this run).</p>")
  parts.append(_gating(evaluation.get("gating", {})))
  accuracy = [n for n in names if n.startswith(("HR@", "NDCG@")) or n == "MRR"]
  if accuracy:
    parts.append(_figure(figures, "metrics.png", charts.grouped_bars(
        accuracy, {key: [overall[key].get(n) for n in accuracy] for key, _ in scorers},
        dict(scorers), "value", "This run, popularity and the previous model"),
        "overall metrics"))
  return "\n".join(parts)


def slices_section(inputs: ReportInputs, figures: Figures) -> str:
  evaluation = inputs.evaluation
  if not evaluation:
    return not_available(inputs.missing.get("evaluation", "no evaluator output"))
  by_scorer = evaluation.get("slices") or {}
  if not by_scorer.get("model"):
    return not_available("the evaluator's output has no slices")
  scorers = _scorers(by_scorer)
  names = slices_lib.report_order(by_scorer["model"])
  header = ["slice", "users"] + [f"{m} {label}" for _, label in scorers for m in SLICE_METRICS]
  rows = [[name, by_scorer["model"][name].get(metrics_lib.NUM_USERS_KEY, 0)]
          + [by_scorer[key].get(name, {}).get(m, "-") for key, _ in scorers for m in SLICE_METRICS]
          for name in names]
  labels = [f"{n} ({by_scorer['model'][n].get(metrics_lib.NUM_USERS_KEY, 0)})" for n in names]
  chart = charts.grouped_bars(
      labels, {key: [by_scorer[key].get(n, {}).get("NDCG@10") for n in names]
               for key, _ in scorers}, dict(scorers), "NDCG@10", "NDCG@10 per slice (users)")
  return "\n".join([
      '<p class="note">history_len: users by history length; popularity: by the held-out '
      "item's popularity band in training; cold_start: held-out items never seen in "
      "training. Empty slices show -.</p>",
      _table(header, rows),
      _figure(figures, "slices.png", chart, "NDCG@10 per slice")])


def _titled(item: str, titles: Dict[str, str]) -> str:
  title = titles.get(item)
  return f"{esc(title)} <code>{esc(item)}</code>" if title else f"<code>{esc(item)}</code>"


def example_section(inputs: ReportInputs, unused_figures: Figures) -> str:
  example = inputs.example
  if example is None:
    return not_available(inputs.missing.get("example", "no example user"))
  titles = inputs.titles
  which = ("the model this run pushed" if example.pushed_this_run
           else "the served model (this run pushed nothing)")
  recent = example.history[-HISTORY_SHOWN:]
  earlier = len(example.history) - len(recent)
  history = "".join(f"<li>{_titled(item, titles)}</li>" for item in recent)
  explained = example.explanations is not None
  rows = []
  for rank, (item, score) in enumerate(example.recommendations, start=1):
    hit = ' class="hit"' if item == example.target else ""
    because = ""
    if explained:
      sources = example.explanations.get(item, [])
      because = "<td>" + (", ".join(f"{_titled(s, titles)} ({w:.2f})" for s, w in sources[:3])
                          or "-") + "</td>"
    rows.append(f'<tr{hit}><td class="num">{rank}</td><td>{_titled(item, titles)}</td>'
                f'<td class="num">{score:.4f}</td>{because}</tr>')
  header = ('<tr><th class="num">rank</th><th>item</th><th class="num">score</th>'
            + ("<th>because you interacted with … (weight)</th>" if explained else "") + "</tr>")
  ranked = [item for item, _ in example.recommendations]
  outcome = (f"rank {ranked.index(example.target) + 1} (highlighted)"
             if example.target in ranked else f"not in the top {len(ranked)}")
  note = "" if explained else f'<p class="note">No explanations: {esc(example.explain_note)}.</p>'
  return "\n".join([
      f'<p>User <code>{esc(example.user_id)}</code> (a test user of median history length), '
      f"recommended by {which}: <code>{esc(example.model_path)}</code>.</p>",
      f"<p>Held-out next item: {_titled(example.target, titles)}: {outcome}.</p>",
      '<div class="columns"><div>',
      f"<h3>History</h3><p class=\"note\">most recent, oldest first"
      f"{f'; {earlier} earlier items not shown' if earlier else ''}</p>",
      f"<ol>{history}</ol></div>",
      f"<div><h3>Recommendations</h3><table>{header}{''.join(rows)}</table>{note}</div></div>"])


# Section id -> (heading, how it is drawn), in page order.
SECTIONS: Dict[str, Tuple[str, Callable[[ReportInputs, Figures], str]]] = {
    "data": ("Data", data_section), "training": ("Training", training_section),
    "metrics": ("Metrics", metrics_section), "slices": ("Slices", slices_section),
    "example": ("Example user", example_section)}


def _meta(inputs: ReportInputs, now: datetime.datetime) -> str:
  summary = inputs.summary
  gating = (inputs.evaluation or {}).get("gating", {})
  verdict = ("blessed" if gating.get("blessed") else "not blessed") if gating else "no blessing"
  pushed = (f"pushed to {esc(summary.get('pushed_destination'))}" if summary.get("pushed")
            else "nothing pushed")
  return f"generated {now:%Y-%m-%d %H:%M} UTC · {verdict} · {pushed}"


def render(inputs: ReportInputs, now: Optional[datetime.datetime] = None) -> Tuple[str, Figures]:
  """(the page, its figures by file name); a section that fails says why, in place."""
  figures: Figures = {}
  now = now or datetime.datetime.now(datetime.timezone.utc)
  sections = []
  for name, (heading, draw) in SECTIONS.items():
    try:
      body = draw(inputs, figures)
    except Exception as e:  # pylint: disable=broad-except
      body = not_available(f"could not draw this section ({type(e).__name__}: {e})")
    sections.append(f'<section id="{name}"><h2>{heading}</h2>\n{body}\n</section>')
  nav = "".join(f'<a href="#{name}">{heading}</a>' for name, (heading, _) in SECTIONS.items())
  return PAGE.substitute(pipeline=esc(inputs.pipeline_name), meta=_meta(inputs, now), nav=nav,
                         sections="\n".join(sections)), figures
