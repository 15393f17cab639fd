"""Item text vectors for the text item representation tests: items in clusters of similar vectors."""

import numpy as np


def clustered_vectors(num_clusters: int, per_cluster: int, dim: int = 8, noise: float = 0.05,
                      seed: int = 0) -> np.ndarray:
  """float32 [num_clusters * per_cluster, dim]: item j belongs to cluster ``j // per_cluster``;
  its vector is the cluster's centre (random, orthonormal to the other centres; dim >=
  num_clusters) plus ``noise`` times Gaussian noise."""
  rng = np.random.default_rng(seed)
  centres = np.linalg.qr(rng.normal(size=[dim, num_clusters]))[0].T
  vectors = np.repeat(centres, per_cluster, axis=0)
  return (vectors + noise * rng.normal(size=vectors.shape)).astype(np.float32)
