# One image for every step of the pipeline on Kubeflow Pipelines v2 / Vertex AI
# Pipelines, and for the nightly retraining CronJob (deploy/cronjob.yaml).
#
#   docker build -t gcr.io/PROJECT/seqrec:$(git rev-parse --short HEAD) .
#   docker push gcr.io/PROJECT/seqrec:$(git rev-parse --short HEAD)
#
# The pipeline names its code by module path (trainer.run_fn.run_fn,
# trainer.preprocessing.preprocessing_fn, components.*.executor.Executor), so the
# project is installed into the TFX image's Python. The base image's ENTRYPOINT
# (the Beam SDK worker boot, which lets Dataflow use this image as its
# sdk_container_image) is kept: Kubeflow sets the command of every step, and the
# CronJob / `docker run --entrypoint python IMAGE -m pipeline.local_runner` set theirs.
ARG TFX_IMAGE=gcr.io/tfx-oss-public/tfx:1.16.0
FROM ${TFX_IMAGE}

# Keras 2 (tf-keras) behind tf.keras, as in the project's venv; stable hashing.
ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONHASHSEED=0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -c "import sys; assert sys.version_info[:2] == (3, 10), \
'the base image must run Python 3.10 (TFX 1.16), found ' + sys.version"

WORKDIR /opt/seqrec
COPY . .

# The pinned set (constraints.txt) keeps the image on the versions the tests ran with.
RUN python -m pip install -c constraints.txt . \
 && python -c "import pipeline.pipeline, trainer.run_fn, trainer.preprocessing, \
components.sequence_builder.executor, components.ranking_evaluator.executor, \
components.pusher.executor; import tfx, kfp; \
print('seqrec image: tfx', tfx.__version__, 'kfp', kfp.__version__)"
