"""TFRS and this project's models need Keras 2: select tf-keras before TensorFlow loads."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
