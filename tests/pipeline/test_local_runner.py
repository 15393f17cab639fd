"""What a local run prints before the pipeline starts, and the config it leaves behind."""

import json

from pipeline import local_runner
from trainer.config import ModelConfig
from trainer.pretraining.config import PretrainConfig


def test_a_run_opens_with_a_short_summary_and_writes_the_whole_config(tmp_path, capsys,
                                                                      monkeypatch):
  monkeypatch.setattr(local_runner, "run", lambda config: {})   # no pipeline
  out = tmp_path / "out"
  assert local_runner.main(["--synthetic-size", "tiny", "--output-dir", str(out),
                            "--model-config", '{"epochs": 1}',
                            "--pretrain-config", '{"epochs": 2}']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith("Data: synthetic, ") and " users, " in lines[0]
  assert [line.split(":")[0] for line in lines[1:5]] == [
      "Encoder", "Fine-tuning", "Pre-training", "Full config"]
  assert lines[2].startswith("Fine-tuning: 1 epoch,") and lines[3].startswith(
      "Pre-training: 2 epochs,")
  assert lines[4] == f"Full config: {out / local_runner.CONFIG_FILE}"
  # Short, apart from the paths under the output folder, as long as the user made it.
  assert max(len(line.replace(str(out), "OUT")) for line in lines[:5]) < 160
  saved = json.loads((out / local_runner.CONFIG_FILE).read_text())
  assert ModelConfig.from_dict(saved["model"]).schedule.epochs == 1
  assert PretrainConfig.from_dict(saved["pretrain"]).schedule.epochs == 2
  assert saved["output_root"] == str(out)


def test_embed_items_embeds_the_canonical_item_table_before_the_pipeline(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(local_runner, "run", lambda config: calls.append(config) or {})
  monkeypatch.setattr(local_runner.embed_items, "main", lambda argv: calls.append(argv) or 0)
  out = tmp_path / "out"
  assert local_runner.main(["--synthetic-size", "tiny", "--output-dir", str(out),
                            "--model-config", '{"item_representation": "id+text"}',
                            "--embed-items"]) == 0
  argv, config = calls
  embedded = out / local_runner.EMBED_DIR
  assert argv == ["--items", str(out / "data" / "items" / "items.csv"), "--out", str(embedded)]
  assert config.item_vectors == str(embedded / "item_vectors.parquet")


def test_a_missing_item_vectors_file_stops_before_the_pipeline(tmp_path, capsys):
  assert local_runner.main(["--synthetic-size", "tiny", "--output-dir", str(tmp_path),
                            "--item-vectors", str(tmp_path / "none.parquet")]) == 1
  assert "none.parquet: no such file" in capsys.readouterr().err
