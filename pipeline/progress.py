"""Readable progress for local runs: component start/finish and the project's own logs.

TFX and Beam log every launcher proto at INFO; a user watching ``make run`` wants to
see which step is running and what our components report. ``--verbose`` keeps all.
"""

import logging
import os
import re

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROGRESS = re.compile(r"^Component \S+ is (running|finished)\.")


class ProgressFilter(logging.Filter):
  """Passes warnings and errors, TFX's component progress, and the project's logs."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return not record.getMessage().startswith(("Tables initialized inside a tf.function",
                                                 "ArtifactQuery.property_predicate"))
    path = os.path.abspath(record.pathname)
    if path.startswith(_PROJECT_ROOT) and f"{os.sep}.venv{os.sep}" not in path:
      return True
    return bool(_PROGRESS.match(record.getMessage()))


def configure(verbose: bool = False) -> None:
  """Routes Python and absl logging to stderr, filtered unless ``verbose``."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.INFO)
  root = logging.getLogger()
  root.setLevel(logging.INFO)
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
  if not verbose:
    handler.addFilter(ProgressFilter())
  for old in list(root.handlers):
    root.removeHandler(old)
  root.addHandler(handler)
  absl_logging.use_python_logging(quiet=True)
