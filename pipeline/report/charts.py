"""The run report's figures: matplotlib (Agg, no display) drawn to PNG bytes."""

import io
from typing import Dict, List, Mapping, Sequence, Tuple

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import ticker  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

# One colour per scorer, the same in every figure.
SCORER_COLOURS = {"model": "#1f77b4", "popularity": "#7f7f7f", "baseline": "#ff7f0e"}
BAND_COLOURS = {"head": "#dbe9f6", "torso": "#fdebd3", "tail": "#e5f5e0"}
History = Mapping[str, Sequence[float]]


def _png(figure) -> bytes:
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  plt.close(figure)
  return buffer.getvalue()


def sequence_lengths(lengths: Sequence[int]) -> bytes:
  """Histogram of users' sequence lengths (interactions per user)."""
  lengths = np.asarray(lengths)
  figure, axes = plt.subplots(figsize=(5.5, 3.4))
  top = int(lengths.max())
  bins = np.arange(int(lengths.min()), top + 2) - 0.5 if top - lengths.min() < 60 else 50
  axes.hist(lengths, bins=bins, color=SCORER_COLOURS["model"], edgecolor="white")
  axes.axvline(np.median(lengths), color="black", linestyle="--", linewidth=1,
               label=f"median {np.median(lengths):g}")
  axes.set(xlabel="interactions per user", ylabel="users", title="Sequence lengths")
  axes.legend(frameon=False)
  return _png(figure)


def item_popularity(counts: Sequence[int], bands: Sequence[str]) -> bytes:
  """Interactions per item, most popular first (log-log), shaded by popularity band.

  ``bands[i]`` is the band (head, torso, tail) of the item of rank i.
  """
  counts = np.asarray(counts)
  ranks = np.arange(1, len(counts) + 1)
  figure, axes = plt.subplots(figsize=(5.5, 3.4))
  for band, colour in BAND_COLOURS.items():
    members = ranks[np.asarray(bands) == band]
    if members.size:
      axes.axvspan(members.min() - 0.5, members.max() + 0.5, color=colour,
                   label=f"{band} ({members.size} items)")
  axes.plot(ranks, counts, color=SCORER_COLOURS["model"], linewidth=1.5)
  axes.set_xscale("log")
  axes.set_yscale("log")
  for axis in (axes.xaxis, axes.yaxis):   # plain numbers, minor ticks labelled over short ranges
    axis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))
  axes.set_xlim(0.8, len(counts) * 1.25)
  axes.set(xlabel="item rank", ylabel="interactions", title="Item popularity")
  axes.legend(fontsize="small", loc="upper right", facecolor="white", framealpha=1)
  return _png(figure)


def _panels(history: History) -> List[Tuple[str, List[str]]]:
  """(title, keys) of each panel: total loss (train, validation), the objectives' training
  losses, validation metrics."""
  total = [k for k in ("loss", "val_loss") if k in history]
  objectives = sorted(k for k in history
                      if k.endswith("loss") and not k.startswith("val_") and k not in total)
  metrics = sorted(k for k in history if k.startswith("val_") and not k.endswith("loss"))
  panels = [("loss", total), ("objectives", objectives), ("validation", metrics)]
  return [(title, keys) for title, keys in panels if keys]


def training_curves(history: History) -> bytes:
  """One row of panels per Keras history: loss, objectives, validation metrics by epoch."""
  panels = _panels(history)
  if not panels:
    raise ValueError("the training history has no loss or validation metric")
  figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
  for axis, (name, keys) in zip(axes[0], panels):
    for key in keys:
      values = np.asarray(history[key], dtype=float)
      epochs = np.arange(1, len(values) + 1)
      axis.plot(epochs, values, marker="o", markersize=3, label=key)
    axis.set(xlabel="epoch", title=name)
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.legend(frameon=False, fontsize="small")
  figure.tight_layout()
  return _png(figure)


def grouped_bars(rows: Sequence[str], values: Dict[str, Sequence[float]],
                 labels: Mapping[str, str], xlabel: str, title: str) -> bytes:
  """Horizontal bars: one group per row label, one bar per scorer (``values``' keys,
  named ``labels[scorer]`` in the legend); missing values draw no bar."""
  scorers = list(values)
  height = 0.8 / max(1, len(scorers))
  positions = np.arange(len(rows))
  figure, axes = plt.subplots(figsize=(7, 0.22 * len(rows) * max(2, len(scorers)) + 1.2))
  for i, scorer in enumerate(scorers):
    bars = np.array([np.nan if v is None else v for v in values[scorer]], dtype=float)
    axes.barh(positions + i * height, np.nan_to_num(bars), height=height,
              label=labels.get(scorer, scorer), color=SCORER_COLOURS.get(scorer))
  axes.set_yticks(positions + height * (len(scorers) - 1) / 2, rows)
  axes.invert_yaxis()
  axes.set(xlabel=xlabel, title=title)
  axes.legend(frameon=False, fontsize="small", loc="lower right")
  return _png(figure)
