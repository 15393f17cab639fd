"""serving.explain_plot: a user's history, the explanation matrix and the PNG it writes."""

import matplotlib.image
import numpy as np
import pytest

from serving import client as client_lib
from serving import explain_plot
from serving.testing import toy_model

HISTORY = ["item3", "item7", "item1", "item12", "item9", "item7", "item20"]


def _write_csv(path, header, rows):
  path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n", encoding="utf-8")
  return str(path)


def test_user_history_is_the_users_items_in_time_order(tmp_path):
  log = _write_csv(tmp_path / "log.csv", ["user_id", "item_id", "timestamp"],
                   [["u1", "b", "20"], ["u2", "x", "5"], ["u1", "a", "10"], ["u1", "c", "30"]])
  assert explain_plot.user_history(log, "u1") == ["a", "b", "c"]
  with pytest.raises(ValueError, match="user 'u9' has no interactions"):
    explain_plot.user_history(log, "u9")
  bad = _write_csv(tmp_path / "bad.csv", ["user", "item_id"], [["u1", "a"]])
  with pytest.raises(ValueError, match=r"missing \['user_id', 'timestamp'\]"):
    explain_plot.user_history(bad, "u1")


def test_because_matrix_puts_each_weight_at_the_items_last_position():
  explained = client_lib.ExplainedHistory(
      [client_lib.Explanation("r1", 0.5, [("a", 0.3), ("b", -0.1)]),
       client_lib.Explanation("r2", 0.4, [])],
      np.zeros([1, 1, 5]), ["", "a", "b", "a", "c"])
  assert explain_plot.history_columns(explained) == [1, 2, 3, 4]
  np.testing.assert_array_equal(explain_plot.because_matrix(explained), [
      [np.nan, -0.1, 0.3, np.nan], [np.nan] * 4])


def _png_pixels(path):
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
  return image


def test_cli_draws_a_users_explanation_from_a_saved_model(explain_export, tmp_path, capsys):
  log = _write_csv(tmp_path / "log.csv", ["user_id", "item_id", "timestamp"],
                   [["u1", item, str(t)] for t, item in enumerate(HISTORY)])
  items = _write_csv(tmp_path / "items.csv", ["item_id", "title"],
                     [[f"item{i}", f"Title {i}"] for i in range(30)])
  out = str(tmp_path / "u1.png")
  assert explain_plot.main(["--model-dir", explain_export, "--user", "u1", "--interactions",
                            log, "--items", items, "-k", "4", "--out", out]) == 0
  assert capsys.readouterr().out.strip() == out
  image = _png_pixels(out)
  assert image[..., :3].std() > 0.1   # drawn, not blank


def test_cli_draws_from_a_server_and_an_empty_history(explain_target, tmp_path):
  out = str(tmp_path / "server.png")
  assert explain_plot.main(["--server", explain_target, "--history", *HISTORY,
                            "--out", out]) == 0
  _png_pixels(out)
  out = str(tmp_path / "unknown.png")
  assert explain_plot.main(["--server", explain_target, "--history", "mystery",
                            "--out", out]) == 0
  _png_pixels(out)


def test_cli_refuses_a_model_without_explain_and_a_user_without_log(tmp_path, capsys):
  toy = toy_model.export_toy_model(str(tmp_path / "toy"), 20)
  assert explain_plot.main(["--model-dir", toy, "--history", "item_1",
                            "--out", str(tmp_path / "x.png")]) == 2
  assert "has no 'explain' signature" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    explain_plot.main(["--model-dir", toy, "--user", "u1", "--out", "x.png"])
