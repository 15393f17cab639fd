"""What a local run prints: TensorFlow's load-time noise dropped, everything else kept."""

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from pipeline import progress

REPO = Path(__file__).resolve().parents[2]
NOISE = ("2026-11-30 17:08:44.962629: E external/local_xla/xla/stream_executor/cuda/"
         "cuda_fft.cc:479] Unable to register cuFFT factory: Attempting to register factory "
         "for plugin cuFFT when one has already been registered\n")


def test_only_the_known_load_noise_is_dropped():
  other = "2026-11-30 17:08:45.000000: E tensorflow/core/x.cc:1] Could not open file\n"
  assert progress.without_load_noise(NOISE + other + "warning: keep me\n") == (
      other + "warning: keep me\n")


def _import_stderr(verbose: bool) -> str:
  code = ("import sys; from pipeline import progress; "
          f"progress.import_tensorflow(verbose={verbose}); print('after', file=sys.stderr)")
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"   # what make and progress.configure set
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300, check=True).stderr


def test_importing_tensorflow_for_a_run_prints_no_cuda_factory_errors():
  quiet = _import_stderr(verbose=False)
  assert "Unable to register" not in quiet and quiet.rstrip().endswith("after")
  # --verbose keeps them (where this TensorFlow build prints them at all).
  verbose = _import_stderr(verbose=True)
  assert progress.without_load_noise(verbose) == quiet



def _record(message: str, level=logging.WARNING) -> logging.LogRecord:
  return logging.LogRecord("x", level, "/elsewhere/x.py", 1, message, None, None)


def test_library_noise_is_filtered_and_other_warnings_pass():
  progress_filter = progress.ProgressFilter()
  assert not progress_filter.filter(_record(
      "Couldn't find python-snappy so the implementation of _TFRecordUtil._masked_crc32c is "
      "not as fast as it could be."))
  assert progress_filter.filter(_record("Examples artifact does not have payload_format"))
  assert not progress_filter.filter(_record("a library's chatter", logging.INFO))


def test_google_cloud_future_warnings_are_hidden_others_are_not(monkeypatch):
  monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("default")
    progress.quiet_libraries()
    for module in ("google.api_core._python_version_support", "pipeline.somewhere"):
      warnings.warn_explicit("old", FutureWarning, "f.py", 1, module=module)
  assert [str(w.message) for w in caught] == ["old"]
  assert caught[0].filename == "f.py" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
