"""The import graph, read statically: each layer imports only itself and lower layers.

Layers, lowest first: serving < trainer < components < pipeline. ``serving`` stands
alone; the others may use of it only its contract, ``serving.contract``.
"""

import ast
import pathlib
from typing import Iterator, List, Optional, Tuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("serving", "trainer", "components", "pipeline")   # lowest first
# Project code outside the layers, above all of them: no layer may import it.
ABOVE_LAYERS = ("bench", "tests")
CONTRACT = "serving.contract"


def module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def is_project_module(name: str) -> bool:
  path = ROOT.joinpath(*name.split("."))
  return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[Tuple[int, str]]:
  """(line, module) for every import anywhere in the file, function bodies included.

  ``from a import b`` counts as ``a.b`` when that is a module of the project, else as ``a``.
  """
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        package = module.split(".")
        package = package[:len(package) - node.level + (1 if is_package else 0)]
        base = ".".join(package + ([base] if base else []))
      for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield node.lineno, submodule if is_project_module(submodule) else base


def rank(package: str) -> Optional[int]:
  if package in LAYERS:
    return LAYERS.index(package)
  if package in ABOVE_LAYERS:
    return len(LAYERS)
  return None   # not project code


def allowed(source: str) -> str:
  lower = list(reversed(LAYERS[1:LAYERS.index(source)]))
  return ", ".join([source] + lower + ([CONTRACT] if source != "serving" else []))


def violation(importer: str, imported: str) -> Optional[str]:
  """Why ``importer`` must not import ``imported``, or None if it may."""
  source, target = importer.split(".")[0], imported.split(".")[0]
  if rank(target) is None or source == target:
    return None
  is_contract = imported == CONTRACT or imported.startswith(CONTRACT + ".")
  if (is_contract if target == "serving" else rank(target) < rank(source)):
    return None
  return f"{source} may import only {allowed(source)} (layers {' < '.join(LAYERS)})"


def layer_files() -> List[pathlib.Path]:
  return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def graph_violations() -> List[str]:
  found = []
  for path in layer_files():
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for line, imported in imported_modules(tree, module, path.name == "__init__.py"):
      why = violation(module, imported)
      if why:
        found.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {imported}: {why}")
  return found


def test_every_layer_imports_only_itself_and_lower_layers():
  found = graph_violations()
  assert not found, "imports against the layer order:\n  " + "\n  ".join(found)


def test_every_layer_is_scanned():
  scanned = {module_name(p).split(".")[0] for p in layer_files()}
  assert scanned == set(LAYERS)


@pytest.mark.parametrize("importer, imported", [
    ("serving.client", "pipeline.configs"),
    ("serving.scann", "trainer.export"),
    ("serving.server", "bench.serving.load"),
    ("trainer.export", "serving.servable"),
    ("trainer.export", "components.pusher.executor"),
    ("components.pusher.executor", "pipeline.configs"),
    ("pipeline.pipeline", "serving"),
    ("pipeline.pipeline", "tests.conftest"),
])
def test_upward_and_sideways_edges_are_violations(importer, imported):
  assert violation(importer, imported)


@pytest.mark.parametrize("importer, imported", [
    ("serving.client", "serving.contract"),
    ("serving.server", "grpc"),
    ("trainer.export", "serving.contract"),
    ("components.ranking_evaluator.evaluation", "trainer.features"),
    ("pipeline.configs", "serving.contract"),
    ("pipeline.pipeline", "components.pusher.component"),
])
def test_downward_edges_and_the_contract_are_allowed(importer, imported):
  assert violation(importer, imported) is None


def test_function_level_and_from_imports_are_seen():
  tree = ast.parse("from serving import contract\n"
                   "def f():\n"
                   "  from pipeline.configs import MODEL_NAME\n"
                   "  from . import export\n")
  assert list(imported_modules(tree, "trainer.run_fn", False)) == [
      (1, "serving.contract"), (3, "pipeline.configs"), (4, "trainer.export")]
