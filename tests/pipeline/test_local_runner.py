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
  assert max(len(line) for line in lines[:5]) < 160
  saved = json.loads((out / local_runner.CONFIG_FILE).read_text())
  assert ModelConfig.from_dict(saved["model"]).schedule.epochs == 1
  assert PretrainConfig.from_dict(saved["pretrain"]).schedule.epochs == 2
  assert saved["output_root"] == str(out)
