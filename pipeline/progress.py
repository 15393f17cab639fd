"""Readable progress for local runs: component start/finish and the project's own logs.

TFX and Beam log every launcher proto at INFO; a user watching ``make run`` wants to
see which step is running and what our components report. ``--verbose`` keeps all.
"""

import logging
import os
import re
import sys
import tempfile
import warnings

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROGRESS = re.compile(r"^Component \S+ is (running|finished)\.")
# Library warnings that say nothing a user of this project can act on: TensorFlow's note
# on lookup tables made in a traced function, ML Metadata's query-API notice, and Beam's
# hint that the optional python-snappy would speed up TFRecord checksums.
_NOISE_WARNINGS = ("Tables initialized inside a tf.function",
                       "ArtifactQuery.property_predicate",
                       "Couldn't find python-snappy")
# What TensorFlow's C++ runtime writes to stderr while it loads, GPU or not: its CUDA
# build registers the cuDNN, cuFFT and cuBLAS plugins twice and logs each refusal as an
# ERROR. Harmless, and nothing a user can act on.
_LOAD_NOISE = re.compile(r"Unable to register cu(DNN|FFT|BLAS) factory: Attempting to "
                         r"register factory for plugin cu\w+ when one has already been "
                         r"registered")


class ProgressFilter(logging.Filter):
  """Passes warnings and errors, TFX's component progress, and the project's logs."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return not record.getMessage().startswith(_NOISE_WARNINGS)
    path = os.path.abspath(record.pathname)
    if path.startswith(_PROJECT_ROOT) and f"{os.sep}.venv{os.sep}" not in path:
      return True
    return bool(_PROGRESS.match(record.getMessage()))


def quiet_libraries() -> None:
  """What ``make`` sets for a run, also for ``python -m pipeline.local_runner``.

  TensorFlow's C++ runtime logs errors only (``TF_CPP_MIN_LOG_LEVEL=2``, unless set;
  it must happen before TensorFlow loads), and the Google Cloud libraries'
  FutureWarnings (Python 3.10 is old; TFX 1.16 needs it) are not shown.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\.|$)")


def configure(verbose: bool = False) -> None:
  """Routes Python and absl logging to stderr; unless ``verbose``, filtered and quieter."""
  if not verbose:
    quiet_libraries()
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


def without_load_noise(text: str) -> str:
  """``text`` without the lines of TensorFlow's known load-time noise."""
  return "".join(line for line in text.splitlines(keepends=True)
                 if not _LOAD_NOISE.search(line))


def import_tensorflow(verbose: bool = False) -> None:
  """Imports TensorFlow, dropping its known load-time noise from stderr unless ``verbose``.

  The noise is C++ ERROR lines written before any Python logging exists, so
  neither ``TF_CPP_MIN_LOG_LEVEL`` (short of hiding every C++ error) nor a logging
  filter can drop it: stderr goes to a file while TensorFlow loads, and every
  other line is passed on.
  """
  if verbose or "tensorflow" in sys.modules:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import,import-outside-toplevel
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as caught:
    os.dup2(caught.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import,import-outside-toplevel
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      caught.seek(0)
      sys.stderr.write(without_load_noise(caught.read().decode(errors="replace")))
      sys.stderr.flush()
