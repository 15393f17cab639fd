"""TFRS and this project's models need Keras 2: select tf-keras before TensorFlow loads.

The one place that sets the switch in Python: ``components``, ``pipeline`` and the tests
(``tests/conftest.py``) import this package first; child processes inherit it.
"""

import os

if not os.environ.get("TF_USE_LEGACY_KERAS"):   # unset or empty, as `TF_USE_LEGACY_KERAS= cmd`
  os.environ["TF_USE_LEGACY_KERAS"] = "1"
