#!/usr/bin/env bash
# Serves the pushed model with stock TensorFlow Serving in Docker.
#   serving/deploy/run_tf_serving.sh [SERVING_ROOT] [MODEL_NAME]
# SERVING_ROOT holds <MODEL_NAME>/<version>/saved_model.pb as the Pusher writes it
# (default: outputs/synthetic/serving). gRPC on 8500, REST on 8501.
set -euo pipefail
root="$(cd "${1:-outputs/synthetic/serving}" && pwd)"
model="${2:-seqrec}"
exec docker run --rm -p 8500:8500 -p 8501:8501 \
  --mount "type=bind,source=${root}/${model},target=/models/${model},readonly" \
  -e MODEL_NAME="${model}" \
  tensorflow/serving:2.16.1 \
  --file_system_poll_wait_seconds=30
