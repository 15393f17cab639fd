"""trainer.item_text: the item text template and the empty-text check."""

import pytest

from trainer import item_text
from trainer.item_text import ItemTextError


def test_compose_makes_title_attributes_and_details_one_sentence_each():
  assert item_text.compose("Toy Story (1995)", ["Animation", "Comedy"], ["pixar", "fun"]) == (
      "Toy Story (1995). Animation, Comedy. pixar, fun.")


def test_compose_leaves_out_empty_parts_and_values_and_keeps_existing_sentence_ends():
  assert item_text.compose("", ["", "Comedy"], []) == "Comedy."
  assert item_text.compose("Airplane!", [], ["  so   funny \n really "]) == (
      "Airplane! so funny really.")
  assert item_text.compose("", [], []) == ""


def test_item_texts_take_the_text_cell_else_the_template():
  texts = item_text.item_texts(["Heat (1995)", "Up (2009)", ""], ["Action|Crime", "", ""],
                               ["", "An old man's house flies.", ""])
  assert texts == ["Heat (1995). Action, Crime.", "An old man's house flies.", ""]


def test_check_texts_names_the_source_the_count_and_the_first_item_without_text():
  with pytest.raises(ItemTextError) as error:
    item_text.check_texts(["a", "b", "c"], ["x.", " ", ""], "item table t.csv",
                          has_text_column=False)
  message = str(error.value)
  assert "\n" not in message
  assert message.startswith("item table t.csv (it has no 'text' column): 2 of 3 items")
  assert "first item_id 'b'" in message
  item_text.check_texts(["a"], ["x."], "item table t.csv")  # all present: no error
