"""Code hygiene the refactor keeps: short module docstrings, no measurements quoted in code.

Design prose lives in docs/ and measured numbers in bench/*/results/; a module docstring
says in 1-3 lines what the module is, and a comment that needs a number links its result file.
"""

import ast
import io
import pathlib
import re
import tokenize

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "components", "trainer", "serving", "bench")
MAX_MODULE_DOCSTRING_LINES = 3

_NUMBER = r"\d+(?:\.\d+)?"
_TIME_UNIT = r"(?:ms|s|secs?|seconds?|mins?|minutes?|h|hours?)"
# A measurement: a timing, a speed-up, a metric value or a peak memory, the things that
# go stale in code. Values a reader sets (k = 10, dropout 0.5, a 30 s timeout) are not.
MEASUREMENT = re.compile(
    rf"\b{_NUMBER}\s?ms\b"                                           # 48 ms
    rf"|\b{_NUMBER}\s?{_TIME_UNIT}\s+(?:vs\.?|against|per|to)\b"     # 91 s vs 21 s
    rf"|\b{_NUMBER}(?:-{_NUMBER})?\s?{_TIME_UNIT}\s+on\s+\d+\s+(?:v?cpus?|cores?)\b"  # 5-10 minutes on 2 cores
    rf"|\bon\s+(?:a|this|the)?\s*\d+-(?:v?cpu|core)\s+machine\b"      # on this 2-core machine
    rf"|\b(?:took|takes|taking|measured|ran\s+in|runs\s+in)\s+(?:about\s+|~)?{_NUMBER}"  # took 45 s
    rf"|~\s?{_NUMBER}\s?x\b"                                          # ~7.5x
    rf"|\b{_NUMBER}\s?x\s+(?:faster|slower|more|less|fewer|larger|smaller|cheaper"
    r"|the\s+speed|speed-?up|slow-?down)\b"                         # 3x faster
    rf"|\b{_NUMBER}\s?%\s+(?:lower|higher|faster|slower|better|worse|fewer|more|less"
    r"|gain|drop|loss)\b"                                            # 10% lower
    r"|\b(?:HR|NDCG|MRR|recall|precision|AUC)(?:@\w+)?[\s:=]+(?:(?:of|is|was|about|at)\s+)?"
    r"~?0?\.\d{2,}"                                                   # NDCG@10 0.0584
    r"|\b0?\.\d{2,}\s+(?:vs\.?|against)\s+0?\.\d{2,}"                # 0.0492 vs 0.0507
    rf"|\b(?:RSS|peak\s+memory)\D{{0,20}}{_NUMBER}\s?[KMG]i?B\b",      # peak RSS 2.5 GB
    re.IGNORECASE)


def _sources():
  for package in PACKAGES:
    yield from sorted((REPO / package).rglob("*.py"))


def _docstrings(tree):
  """(line number, text) of every module, class and function docstring."""
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      doc = ast.get_docstring(node, clean=False)
      if doc:
        yield node.body[0].lineno, doc


def _comments(text):
  for token in tokenize.generate_tokens(io.StringIO(text).readline):
    if token.type == tokenize.COMMENT:
      yield token.start[0], token.string


def _measurements(text):
  """(line number, line) of every docstring or comment line that quotes a measurement."""
  for lineno, doc in _docstrings(ast.parse(text)):
    for offset, line in enumerate(doc.splitlines()):
      if MEASUREMENT.search(line):
        yield lineno + offset, line.strip()
  for lineno, comment in _comments(text):
    if MEASUREMENT.search(comment):
      yield lineno, comment.strip()


def test_the_scan_sees_every_package():
  assert (REPO / "pyproject.toml").is_file(), f"{REPO} is not the repository root"
  for package in PACKAGES:
    assert (REPO / package / "__init__.py").is_file(), package
  assert len(list(_sources())) > 50


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(REPO)))
def test_module_docstring_is_short(path):
  text = path.read_text()
  if not text.strip():
    return  # an empty __init__.py
  doc = ast.get_docstring(ast.parse(text), clean=True) or ""
  lines = [line for line in doc.splitlines() if line.strip()]
  assert 1 <= len(lines) <= MAX_MODULE_DOCSTRING_LINES, (
      f"{path.relative_to(REPO)}: module docstring has {len(lines)} lines; say what the "
      f"module is in 1-{MAX_MODULE_DOCSTRING_LINES} and put the design in docs/architecture.md")


def test_no_measurement_is_quoted_in_comments_or_docstrings():
  found = [f"{path.relative_to(REPO)}:{lineno}: {line}"
           for path in _sources() for lineno, line in _measurements(path.read_text())]
  assert not found, ("measurements go stale in code; say the reason and link the result "
                     "file (bench/*/results/HISTORY.md) instead:\n" + "\n".join(found))


@pytest.mark.parametrize("text", [
    "91 s vs 21 s per epoch", "48 ms against 63 ms", "a Beauty epoch 6.5 s against 7.5 s",
    "about 3x faster per epoch", "~7.5x.", "cuts encoder positions ~7.5x", "~4x slower",
    "10% lower NDCG@10 on Beauty", "NDCG@10 0.0584", "recall@10 about 0.97",
    "HR@10 = 0.0961", "(0.0492 vs 0.0507 NDCG@10)", "took 45 s to trace",
    "took 2.5 minutes", "takes 5-10 minutes on 2 cores", "on this 2-core machine",
    "peak RSS 2.5 GB"])
def test_the_pattern_catches_a_measurement(text):
  assert MEASUREMENT.search(text)


@pytest.mark.parametrize("text", [
    "k = 10 items", "batch of 256", "0 = off", "d = 64", "dropout 0.5", "alpha 0.7",
    "learning rate 5e-4", "every load level stops after 30 s", "polls every 2 s",
    "a validation NDCG@10 gain", "HR@K and NDCG@K (K = 5, 10, 20)", "a 2x2 matrix",
    "0x1F", "[B, L, V] logits", "concurrency 1, 8, 32", "fractions keep their order to 1 us",
    "TF 2.16", "cron 0 2 * * *", "min_value (default 0.0)"])
def test_the_pattern_passes_a_setting(text):
  assert not MEASUREMENT.search(text)


def test_a_measurement_is_found_in_a_comment_and_in_a_docstring():
  source = '"""A module."""\n\n\ndef f():\n  """Fast.\n\n  It took 45 s.\n  """\n  x = 1  # 3x faster\n'
  assert [lineno for lineno, _ in _measurements(source)] == [7, 9]
