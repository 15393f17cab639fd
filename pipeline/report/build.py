"""Writes the run report (data, training, metrics, slices, one user) of a run's outputs."""

import os
import sys
from typing import Dict, Optional

from pipeline import configs
from pipeline.report import page
from pipeline.report import sources

REPORT_DIR = "report"          # under the run's output root
REPORT_FILE = "report.html"


def write(inputs: sources.ReportInputs, out_dir: str) -> str:
  """Renders ``inputs`` into ``out_dir``/report.html (and its PNGs); returns the page's path."""
  html, figures = page.render(inputs)
  os.makedirs(out_dir, exist_ok=True)
  for name, png in figures.items():
    with open(os.path.join(out_dir, name), "wb") as f:
      f.write(png)
  path = os.path.join(out_dir, REPORT_FILE)
  with open(path, "w", encoding="utf-8") as f:
    f.write(html)
  return path


def write_report(config: configs.PipelineConfig, summary: Dict) -> str:
  """The report of the newest run of ``config``'s pipeline; returns the page's path."""
  return write(sources.collect(config, summary), os.path.join(config.output_root, REPORT_DIR))


def write_or_warn(config: configs.PipelineConfig, summary: Dict) -> Optional[str]:
  """``write_report``, or None after one warning line: a report never fails a run."""
  try:
    return write_report(config, summary)
  except Exception as e:  # pylint: disable=broad-except
    print(f"warning: the run report was not written ({type(e).__name__}: {e})",
          file=sys.stderr, flush=True)
    return None
