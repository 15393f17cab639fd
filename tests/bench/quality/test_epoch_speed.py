"""The epoch-speed benchmark times every setting on the same data and says how it ran."""

import json

from bench.quality import epoch_speed


def test_each_setting_gets_a_timed_epoch_marked_alone_or_shared(tmp_path):
  out = tmp_path / "speed.json"
  epoch_speed.main(["--dataset", "synthetic", "--work-dir", str(tmp_path / "work"),
                    "--out", str(out), "--model-config",
                    '{"embedding_dim": 8, "ff_dim": 8, "num_blocks": 1, "max_seq_len": 10, '
                    '"batch_size": 512}'])
  result = json.loads(out.read_text())
  assert result["batches_per_epoch"] > 0 and result["rows_per_epoch"] > 0
  for name in ("input_pipeline", *epoch_speed.SETTINGS):
    timing = result[name]
    assert timing["seconds"] > 0 and timing["cores"] in ("alone", "shared")
    assert len(timing["load_average"]) == 2
  assert result["default"]["loss"] > 0 and result["bfloat16"]["loss"] > 0
  assert [result[name]["mixed_precision"] for name in ("default", "bfloat16")] == [
      "float32", "bfloat16"]
