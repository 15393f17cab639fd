"""The one error ingestion raises for input it cannot use."""


class IngestError(ValueError):
  """Input data that cannot be turned into the canonical format.

  The message names the file (or DataFrame), the row or field and what was
  expected, so that a user can fix the input.
  """
