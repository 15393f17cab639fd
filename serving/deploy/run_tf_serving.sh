#!/usr/bin/env bash
# Serves the pushed model with stock TensorFlow Serving in Docker.
#   serving/deploy/run_tf_serving.sh [SERVING_ROOT] [MODEL_NAME]
# SERVING_ROOT holds <MODEL_NAME>/<version>/saved_model.pb as the Pusher writes it
# (default: outputs/synthetic/serving). gRPC on 8500, REST on 8501, published on
# 127.0.0.1 only: TF Serving has no authentication and no TLS, so anyone who can
# reach the ports can call it. BIND_ADDRESS=0.0.0.0 publishes them on every
# interface; do that only behind a firewall or a TLS-terminating proxy.
# The model config is serving/deploy/models.config with MODEL_NAME filled in:
# latest-version policy, new versions picked up within 30 s.
# Without Docker: python -m serving.server --model-base-path SERVING_ROOT/MODEL_NAME
#   --model-name MODEL_NAME --port 8500 (same gRPC API, no REST).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${1:-outputs/synthetic/serving}" && pwd)"
model="${2:-seqrec}"
if [[ ! -d "${root}/${model}" ]]; then
  echo "error: ${root}/${model} does not exist; run the pipeline first (make run)" >&2
  exit 1
fi
config_dir="$(mktemp -d)"
trap 'rm -rf "${config_dir}"' EXIT
sed -e "s/\"seqrec\"/\"${model}\"/" -e "s#/models/seqrec#/models/${model}#" \
  "${here}/models.config" > "${config_dir}/models.config"
bind="${BIND_ADDRESS:-127.0.0.1}"
docker run --rm -p "${bind}:8500:8500" -p "${bind}:8501:8501" \
  --mount "type=bind,source=${root}/${model},target=/models/${model},readonly" \
  --mount "type=bind,source=${config_dir},target=/config,readonly" \
  tensorflow/serving:2.16.1 \
  --model_config_file=/config/models.config \
  --file_system_poll_wait_seconds=30
