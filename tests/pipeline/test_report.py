"""The run report: every section from a run's outputs, escaping, missing parts, Chromium."""

import dataclasses
import html
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from components.ranking_evaluator.evaluation import SequenceRow
from pipeline.report import build as report
from pipeline import summary as summary_lib
from pipeline.report import page
from pipeline.report import screenshot
from pipeline.report import sources
from serving import contract
from serving.testing import toy_model

SECTIONS = ("data", "training", "metrics", "slices", "example")
SCRIPT_TITLE = "<script>alert('x')</script> & Co"
SLICE_ROW = {"HR@10": 0.5, "NDCG@10": 0.25, "num_users": 8}
EVALUATION = {
    "split": "test",
    "model": {"HR@10": 0.5, "NDCG@10": 0.25, "MRR": 0.2, "num_users": 12},
    "popularity": {"HR@10": 0.25, "NDCG@10": 0.125, "MRR": 0.1, "num_users": 12},
    "baseline": {"HR@10": 0.4, "NDCG@10": 0.2, "MRR": 0.15, "num_users": 12},
    "beyond_accuracy": {"model": {"novelty@10": 7.5}, "popularity": {"novelty@10": 2.5}},
    "slices": {scorer: {"history_len:<=3": SLICE_ROW, "popularity:tail": SLICE_ROW,
                        "cold_start:cold_items": {"num_users": 0}}
               for scorer in ("model", "popularity", "baseline")},
    "gating": {"metric": "NDCG@10", "value": 0.25, "blessed": True, "reasons": []},
}
ROWS = [SequenceRow(f"u{i}".encode(), tuple(f"i{j}".encode() for j in range(i + 2)),
                    b"i0" if i % 2 else b"i9") for i in range(12)]


def _inputs(**changes) -> sources.ReportInputs:
  example = sources.ExampleUser(
      user_id="<u1>", history=["i1", "i2", "i3"], target="i9",
      recommendations=[("i9", 2.5), ("i7", 1.25)], model_path="/serving/seqrec/7",
      pushed_this_run=True, explanations=None, explain_note="the model has no 'explain' signature")
  inputs = sources.ReportInputs(
      pipeline_name="seqrec-test",
      summary={"pushed": True, "pushed_destination": "/serving/seqrec/7"},
      data=sources.data_summary({"num_users_kept": 12, "num_items": 10}, ROWS),
      histories={"pre-training": {"loss": [3.0, 2.0], "masked_item_loss": [2.5, 1.5],
                                  "val_loss": [3.1, 2.2]},
                 "fine-tuning": {"loss": [4.0, 3.0, 2.5], "val_loss": [4.1, 3.2, 3.0],
                                 "val_NDCG@10": [0.1, 0.2, 0.15]}},
      evaluation=EVALUATION, example=example, titles={"i9": SCRIPT_TITLE, "i1": "Face cream"})
  return dataclasses.replace(inputs, **changes)


def _section(text: str, name: str) -> str:
  match = re.search(f'<section id="{name}">(.*?)</section>', text, re.S)
  assert match, f"no section {name}"
  return match.group(1)


def test_every_section_is_drawn_from_complete_inputs():
  text, figures = page.render(_inputs())
  for name in SECTIONS:
    assert page.NOT_AVAILABLE not in _section(text, name), name
  assert set(figures) == {"sequence_lengths.png", "item_popularity.png", "metrics.png",
                          "slices.png", "training_pre-training.png", "training_fine-tuning.png"}
  assert all(png.startswith(b"\x89PNG") for png in figures.values())
  assert text.count('src="data:image/png;base64,') == len(figures)
  metrics = _section(text, "metrics")
  assert "previous model" in metrics and "0.2000" in metrics and "BLESSED" in metrics
  assert "best val_NDCG@10 0.2000 at epoch 2" in _section(text, "training")
  example = _section(text, "example")
  assert "rank 1 (highlighted)" in example and "No explanations" in example


def test_the_page_needs_no_network():
  text, _ = page.render(_inputs())
  assert not re.search(r'(src|href)="(https?:)?//', text)


def test_titles_and_ids_are_escaped():
  text, _ = page.render(_inputs())
  assert "<script>" not in text and "<u1>" not in text
  assert html.escape(SCRIPT_TITLE) in _section(text, "example")
  assert "&lt;u1&gt;" in text


def test_a_missing_evaluator_output_says_not_available_in_its_sections():
  inputs = _inputs(evaluation=None, missing={"evaluation": "no evaluator output (metrics.json)"})
  text, _ = page.render(inputs)
  for name in ("metrics", "slices"):
    assert "Not available: no evaluator output (metrics.json)" in _section(text, name)
  for name in ("data", "training", "example"):
    assert page.NOT_AVAILABLE not in _section(text, name)


def test_a_section_that_cannot_be_drawn_says_why_and_the_others_still_show():
  text, _ = page.render(_inputs(histories={"fine-tuning": {"accuracy": [0.5]}}))
  assert "could not draw this section" in _section(text, "training")
  assert page.NOT_AVAILABLE not in _section(text, "metrics")


def test_explanations_are_shown_when_the_model_has_them():
  example = dataclasses.replace(_inputs().example,
                                explanations={"i9": [("i1", 0.75), ("i2", 0.25)]})
  text, _ = page.render(_inputs(example=example))
  section = _section(text, "example")
  assert "because you interacted with" in section and "Face cream" in section
  assert "0.75" in section and "No explanations" not in section


def test_explanations_are_read_by_their_contract_names():
  outputs = {"item_ids": np.array([[b"a", b"b"]], dtype=object),
             "because_ids": np.array([[[b"x", b"y"], [b"y", b""]]], dtype=object),
             "because_weights": np.array([[[0.25, 0.75], [1.0, 0.0]]], dtype=np.float32),
             "scores": np.array([[2.0, 1.0]], dtype=np.float32)}
  assert sources.explanations(outputs, ["a", "b"]) == {"a": [("y", 0.75), ("x", 0.25)],
                                                       "b": [("y", 1.0)]}
  with pytest.raises(ValueError, match="the explain outputs lack because_ids, because_weights"):
    sources.explanations({"scores": outputs["scores"]}, ["a", "b"])


class _ExplainingToy(toy_model.ToyRecommender):
  """The toy model plus an ``explain`` signature: each item explained by the last two
  history items, weights 0.25 and 0.75."""

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY),
      tf.TensorSpec([], tf.int32, name=contract.INPUT_K)])
  def explain(self, history, k):
    top = self.recommend(history, k)[contract.OUTPUT_ITEM_IDS]
    shape = tf.concat([tf.shape(top), [2]], axis=0)
    sources = tf.broadcast_to(history[:, tf.newaxis, -2:], shape)
    weights = tf.broadcast_to(tf.constant([0.25, 0.75]), shape)
    return {contract.OUTPUT_ITEM_IDS: top, contract.OUTPUT_BECAUSE_IDS: sources,
            contract.OUTPUT_BECAUSE_WEIGHTS: weights}


def _export(module, path: str, explain: bool) -> str:
  signatures = {
      contract.DEFAULT_SIGNATURE: module.recommend.get_concrete_function(),
      contract.QUERY_EMBEDDING_SIGNATURE: module.query_embedding.get_concrete_function(),
      contract.ITEM_EMBEDDINGS_SIGNATURE: module.item_embeddings.get_concrete_function()}
  if explain:
    signatures[sources.EXPLAIN_SIGNATURE] = module.explain.get_concrete_function()
  tf.saved_model.save(module, path, signatures=signatures)
  return path


@pytest.mark.parametrize("explain", [False, True])
def test_the_example_user_gets_the_models_recommendations_and_explanations_if_any(
    tmp_path, explain):
  ids = toy_model.toy_item_ids(20)
  module = _ExplainingToy(ids, toy_model.toy_embeddings(20, 4, seed=0))
  path = _export(module, str(tmp_path / "model"), explain)
  row = SequenceRow(b"u", (b"item_1", b"item_2", b"item_3"), b"item_4")
  example = sources.recommend_for(path, row, pushed_this_run=True, k=5)
  expected = toy_model.expected_recommendations([["item_1", "item_2", "item_3"]], 5,
                                                num_items=20, dim=4)[0]
  assert [item for item, _ in example.recommendations] == [item for item, _ in expected]
  if explain:
    assert example.explanations == {item: [("item_3", 0.75), ("item_2", 0.25)]
                                    for item, _ in expected}
  else:
    assert example.explanations is None and "no 'explain' signature" in example.explain_note


def test_data_summary_counts_test_sequences_and_bands_items_by_popularity():
  data = sources.data_summary({}, ROWS)
  assert data.lengths == [i + 3 for i in range(12)]
  assert data.item_counts[0] == ("i0", 12 + 6)   # every history, and 6 targets
  assert len(data.bands) == len(data.item_counts) and data.bands[0] == "head"
  assert data.bands[-1] == "tail"


def test_the_example_user_has_a_median_length_history():
  assert sources.pick_user(ROWS).user_id == b"u5"


def test_collect_from_an_empty_output_folder_records_why_each_part_is_missing(tmp_path):
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  config = local_runner.build_config(local_runner.parse_args(["--output-dir", str(tmp_path)]))
  inputs = sources.collect(config, {})
  assert set(inputs.missing) == {"data", "training", "evaluation", "example"}
  path = report.write(inputs, str(tmp_path / "report"))
  text = open(path, encoding="utf-8").read()
  assert all(page.NOT_AVAILABLE in _section(text, name) for name in SECTIONS)


def test_a_failing_report_warns_in_one_line_and_does_not_raise(monkeypatch, capsys, tmp_path):
  def broken(*unused):
    raise RuntimeError("disk full")
  monkeypatch.setattr(report.sources, "collect", broken)
  assert report.write_or_warn(object(), {}) is None
  err = capsys.readouterr().err
  assert err.strip() == "warning: the run report was not written (RuntimeError: disk full)"


def test_the_summary_names_the_report():
  text = summary_lib.format_summary({"pushed": False, "report": "/out/report/report.html"}, 1.0)
  assert "report: /out/report/report.html" in text.splitlines()


def _ink_rows(png_path: str) -> np.ndarray:
  """Per pixel row, whether it holds anything but the white background."""
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  pixels = matplotlib.image.imread(png_path)[..., :3]
  return (pixels < 0.95).any(axis=(1, 2))


@pytest.mark.skipif(screenshot.find_browser() is None,
                    reason="no Chromium on PATH (apt-get install chromium): the report is not "
                           "rendered in a browser here")
def test_the_report_renders_in_headless_chromium(tmp_path):
  path = report.write(_inputs(), str(tmp_path / "report"))
  shot = screenshot.screenshot(path, str(tmp_path / "shot.png"), height=4000)
  ink = _ink_rows(shot)
  assert ink[:400].any(), "the top of the page is blank"
  # The figures render: the page is several thousand pixels of content, not a few lines.
  assert np.flatnonzero(ink).max() > 2000
  assert os.path.getsize(shot) > 50_000


def test_the_tiny_run_writes_a_complete_report(tiny_run):
  _, summary = tiny_run
  path = summary["report"]
  assert os.path.isfile(path)
  text = open(path, encoding="utf-8").read()
  for name in SECTIONS:
    assert page.NOT_AVAILABLE not in _section(text, name), name
  assert os.path.isfile(os.path.join(os.path.dirname(path), "training_fine-tuning.png"))
  assert "Pre-training" in text and "val_NDCG@10" in text
