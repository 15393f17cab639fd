"""Serving benchmarks: gRPC load generation against a model server."""
