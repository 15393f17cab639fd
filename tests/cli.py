"""Runs a command-line module in a fresh Python process, as a user would: for commands that
load and save SavedModels, whose memory TensorFlow keeps until the process exits, so
in-process runs would pile up in the test worker."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_module(module: str, *args) -> subprocess.CompletedProcess:
  """``python -m module args`` from the repository root; stdout and stderr captured."""
  return subprocess.run([sys.executable, "-m", module, *(str(a) for a in args)], cwd=REPO,
                        capture_output=True, text=True, check=False)
