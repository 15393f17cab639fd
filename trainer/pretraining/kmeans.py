"""K-means (k-means++ seeding, Lloyd iterations) in numpy, for intent clustering."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class KMeansResult:
  """centroids float32 [k, d]; assignments int64 [n] (index of each point's nearest
  centroid); inertia = sum of squared distances to it; iterations run."""
  centroids: np.ndarray
  assignments: np.ndarray
  inertia: float
  iterations: int


def _normalize(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def squared_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
  """float [n, k]: squared Euclidean distance of every point to every centroid."""
  d = (np.sum(points ** 2, axis=1)[:, None] - 2.0 * points @ centroids.T
       + np.sum(centroids ** 2, axis=1)[None, :])
  return np.maximum(d, 0.0)


def nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
  """int64 [n]: index of the nearest centroid (Euclidean) of each point."""
  return np.argmin(squared_distances(points, centroids), axis=1)


def kmeans(points: np.ndarray, num_clusters: int, iterations: int = 20, seed: int = 0,
           spherical: bool = False) -> KMeansResult:
  """Clusters ``points`` (float [n, d]) into at most ``num_clusters`` groups.

  Seeding is k-means++; then Lloyd iterations until assignments stop changing or
  ``iterations`` is reached. A cluster that empties is re-seeded with the point
  farthest from its centroid. ``spherical`` L2-normalises the points and keeps
  the centroids on the unit sphere (nearest centroid = highest cosine).

  When there are fewer distinct points than ``num_clusters``, k is the number of
  distinct points. The returned assignments are nearest-centroid assignments
  under the returned centroids.
  """
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or points.shape[0] == 0:
    raise ValueError(f"kmeans needs a non-empty [n, d] array; got shape {points.shape}")
  if num_clusters < 1 or iterations < 1:
    raise ValueError(f"num_clusters and iterations must be >= 1; got {num_clusters}, {iterations}")
  if not np.all(np.isfinite(points)):
    raise ValueError("kmeans points contain NaN or infinity")
  if spherical:
    points = _normalize(points)
  rng = np.random.default_rng(seed)
  n = points.shape[0]
  k = min(num_clusters, len(np.unique(points, axis=0)))

  # k-means++: each next centre drawn with probability ~ squared distance to the closest one.
  centroids = [points[rng.integers(n)]]
  closest = squared_distances(points, centroids[0][None])[:, 0]
  for _ in range(1, k):
    total = closest.sum()
    index = rng.choice(n, p=closest / total) if total > 0 else rng.integers(n)
    centroids.append(points[index])
    closest = np.minimum(closest, squared_distances(points, points[index][None])[:, 0])
  centroids = np.stack(centroids)

  assignments = nearest(points, centroids)
  done = 0
  for done in range(1, iterations + 1):
    distances = squared_distances(points, centroids)
    for c in range(k):
      members = assignments == c
      if members.any():
        centroids[c] = points[members].mean(axis=0)
      else:
        farthest = np.argmax(distances[np.arange(n), assignments])
        centroids[c] = points[farthest]
        assignments[farthest] = c
    if spherical:
      centroids = _normalize(centroids)
    updated = nearest(points, centroids)
    if np.array_equal(updated, assignments):
      break
    assignments = updated
  assignments = nearest(points, centroids)
  inertia = float(squared_distances(points, centroids)[np.arange(n), assignments].sum())
  return KMeansResult(centroids.astype(np.float32), assignments.astype(np.int64), inertia, done)
