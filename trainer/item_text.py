"""The item text a sentence encoder reads: one documented template over the item table."""

from typing import Iterable, List, Sequence

from trainer import features

# A field that already ends a sentence gets no extra period.
_SENTENCE_ENDS = (".", "!", "?")


class ItemTextError(ValueError):
  """Item text or item vectors that cannot be used; the message names the file and row."""


def compose(title: str, attributes: Iterable[str] = (), details: Iterable[str] = ()) -> str:
  """The item text template.

  ``"<title>. <attribute>, <attribute>. <detail>, <detail>."``: the title, then the
  attributes (genres, categories, brand, ...), then free-text details (tags, a
  description), each part a sentence; empty parts and values are left out. For
  example ``compose("Toy Story (1995)", ["Animation", "Comedy"], ["pixar"])`` is
  ``"Toy Story (1995). Animation, Comedy. pixar."``.

  Args:
    title: the item's title, may be empty.
    attributes: attribute names.
    details: further text fragments.

  Returns:
    One line of text; "" when every part is empty.
  """
  parts = [_one_line(title),
           ", ".join(v for v in map(_one_line, attributes) if v),
           ", ".join(v for v in map(_one_line, details) if v)]
  return " ".join(_sentence(p) for p in parts if p)


def item_texts(titles: Sequence[str], attributes: Sequence[str],
               texts: Sequence[str]) -> List[str]:
  """The text of each item of a canonical item table.

  Args:
    titles: the ``title`` column.
    attributes: the ``attributes`` column (``a|b|c``).
    texts: the ``text`` column, or ``[""] * n`` when the table has none.

  Returns:
    Per item, its non-empty ``text`` cell, else ``compose(title, attributes)``;
    "" for an item with neither.
  """
  return [_one_line(text) or compose(title, _split(attrs))
          for title, attrs, text in zip(titles, attributes, texts)]


def check_texts(item_ids: Sequence[str], texts: Sequence[str], source: str,
                has_text_column: bool = True) -> None:
  """Raises ItemTextError naming ``source`` and the first item whose text is empty."""
  empty = [i for i, text in enumerate(texts) if not text.strip()]
  if not empty:
    return
  column = "" if has_text_column else f" (it has no '{features.ITEM_TABLE_TEXT}' column)"
  raise ItemTextError(
      f"{source}{column}: {len(empty)} of {len(texts)} items have no text, first item_id "
      f"{item_ids[empty[0]]!r}; give every item a {features.ITEM_TABLE_TEXT}, "
      f"{features.ITEM_TABLE_TITLE} or {features.ITEM_TABLE_ATTRIBUTES}, or drop it")


def _split(attributes: str) -> List[str]:
  return attributes.split(features.ATTRIBUTE_SEPARATOR) if attributes else []


def _one_line(text: str) -> str:
  return " ".join(str(text).split()) if text else ""


def _sentence(text: str) -> str:
  return text if text.endswith(_SENTENCE_ENDS) else text + "."
