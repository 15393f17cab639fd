"""The epoch-speed benchmark times every setting on the same data and says how it ran."""

import json
import os

import pytest

from bench.quality import epoch_speed
from trainer import cpu_features

SMALL_MODEL = ('{"embedding_dim": 8, "ff_dim": 8, "num_blocks": 1, "max_seq_len": 10, '
               '"batch_size": 512}')


def _run(tmp_path, *extra):
  out = tmp_path / "speed.json"
  epoch_speed.main(["--dataset", "synthetic", "--work-dir", str(tmp_path / "work"),
                    "--out", str(out), "--model-config", SMALL_MODEL, *extra])
  return json.loads(out.read_text())


def test_each_setting_gets_interleaved_timed_epochs_marked_alone_or_shared(tmp_path,
                                                                          monkeypatch):
  # An AVX2-only CPU: "auto" must train in float32 there, never assume bfloat16.
  monkeypatch.setattr(cpu_features, "cpu_flags", lambda path=None: frozenset({"avx2"}))
  result = _run(tmp_path, "--rounds", "2")
  assert result["batches_per_epoch"] > 0 and result["rows_per_epoch"] > 0
  assert result["cpu_bf16"] is False and result["phase"] == "finetune"
  assert set(result["scheduling"]) == {"nice", "autogroup"}
  assert result["input_pipeline"]["seconds"] > 0
  for name in epoch_speed.SETTINGS:
    setting = result[name]
    assert len(setting["epochs"]) == 2 and setting["cores"] in ("alone", "shared")
    for epoch in setting["epochs"]:
      assert epoch["seconds"] > 0 and epoch["loss"] > 0 and len(epoch["load_average"]) == 2
      # every step was timed, and the slowest is no faster than the median
      assert epoch["steps"] == result["batches_per_epoch"]
      assert epoch["max_step_ms"] >= epoch["median_step_ms"] > 0
    seconds = sorted(epoch["seconds"] for epoch in setting["epochs"])
    assert setting["median_seconds"] == pytest.approx(sum(seconds) / 2, abs=0.011)
  assert [(result[n]["setting"], result[n]["mixed_precision"], result[n]["optimizer"])
          for n in ("default", "float32", "bfloat16", "auto", "adam")] == [
      ("float32", "float32", "fused_adam"), ("float32", "float32", "fused_adam"),
      ("bfloat16", "bfloat16", "fused_adam"),
      ("auto", "float32", "fused_adam"), ("float32", "float32", "adam")]
  assert result["commit"] and result["date"] and result["machine"]["cores"] == os.cpu_count()


def test_pretraining_epochs_are_timed_with_the_objectives(tmp_path):
  result = _run(tmp_path, "--phase", "pretrain", "--settings", "bfloat16", "--rounds", "1",
                "--pretrain-config", '{"num_clusters": 4, "attribute_weight": 0.0}')
  assert result["phase"] == "pretrain" and result["schedule"]["mixed_precision"] == "float32"
  epoch = result["bfloat16"]["epochs"][0]
  assert result["bfloat16"]["mixed_precision"] == "bfloat16"
  assert epoch["steps"] == result["batches_per_epoch"] and epoch["loss"] > 0


def test_the_scheduling_priority_reads_the_autogroup(tmp_path):
  path = tmp_path / "autogroup"
  path.write_text("/autogroup-6 nice -20\n")
  assert epoch_speed.scheduling(str(path))["autogroup"] == {"group": "/autogroup-6",
                                                           "nice": -20}
  assert epoch_speed.scheduling(str(tmp_path / "missing"))["autogroup"] is None


def test_unknown_settings_are_refused(tmp_path):
  with pytest.raises(SystemExit):
    epoch_speed.main(["--dataset", "synthetic", "--settings", "float16"])


def test_a_profiled_step_names_its_costliest_ops(tmp_path):
  result = _run(tmp_path, "--settings", "default", "--rounds", "1", "--profile-steps", "3")
  profile = result["default"]["profile"]
  ops = profile["ops"]
  assert profile["steps"] == 3 and 0 < len(ops) <= epoch_speed.PROFILE_TOP_OPS
  times = [op["ms_per_step"] for op in ops]
  assert times == sorted(times, reverse=True) and times[0] > 0
  assert 0 < sum(op["share"] for op in ops) <= 1.0 + 1e-3
  assert not any("::" in op["op"] or "ExecutorState" in op["op"] for op in ops)   # kernels only
  # the step's own kernels, by scope and type: the catalogue softmax's matmuls among them
  assert any(op["type"].endswith("MatMul") and op["op"].startswith("while/") for op in ops)
  # every kernel, grouped by type and by part of the step: nothing left out
  for grouping in ("by_type", "by_part"):
    groups = profile[grouping]
    assert sum(g["share"] for g in groups) == pytest.approx(1.0, abs=2e-3)
    assert sum(g["ms_per_step"] for g in groups) == pytest.approx(profile["ms_per_step"],
                                                                  rel=1e-3)
    assert sum(g["kernels"] for g in groups) >= len(ops)
  parts = {g["group"] for g in profile["by_part"]}
  assert {"catalogue softmax loop", "backward (gradient_tape)"} <= parts
