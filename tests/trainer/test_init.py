"""The Keras-2 switch: set in one place in Python (trainer/__init__.py), reached from every entry package."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SWITCH = "TF_" + "USE_LEGACY_KERAS"   # split, so this file does not count as a place
ONE_PLACE = "trainer/__init__.py"


def _python_sources():
  for root, dirs, files in os.walk(REPO_ROOT):
    dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
    for name in files:
      if name.endswith(".py"):
        yield pathlib.Path(root, name)


def test_the_switch_is_set_in_one_place_in_the_python_sources():
  found = {path.relative_to(REPO_ROOT).as_posix() for path in _python_sources()
           if SWITCH in path.read_text(encoding="utf-8", errors="replace")}
  assert ONE_PLACE in found
  assert found - {ONE_PLACE} == set(), (
      f"set {SWITCH} in {ONE_PLACE} only; import trainer first instead")


@pytest.mark.parametrize("package", ["trainer", "components", "pipeline", "bench"])
@pytest.mark.parametrize("value", [None, ""])
def test_importing_an_entry_package_selects_keras_2(package, value):
  env = {k: v for k, v in os.environ.items() if k != SWITCH}
  if value is not None:
    env[SWITCH] = value
  code = f"import os, {package}; assert os.environ.get({SWITCH!r}) == '1'"
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, env=env)
