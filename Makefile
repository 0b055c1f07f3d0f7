# seqq developer entry points. `make test` and `make demo` work on a fresh clone: each creates
# .venv when missing, installs torch==2.13.0 (the local CPU wheel) before anything else, so no
# dependency can pull a CUDA build, then the project with its dev extras.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEQQ := $(VENV)/bin/seqq
TORCH_PIN ?= torch==2.13.0
PYTEST_ARGS ?=

# Nothing phones home from tests, CI or the demo.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install lint format test test-quick test-integration redis compose-tool demo bench gpu-check ui-check clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e '.[dev]'
	@$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	@touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check shared scheduler worker tests
	$(VENV)/bin/ruff format --check shared scheduler worker tests
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format shared scheduler worker tests
	$(VENV)/bin/ruff check --fix shared scheduler worker tests

redis:
	@bash scripts/ensure-redis.sh

# Debian's docker-compose (v1) validates docker-compose.yml offline; no engine is needed.
compose-tool:
	@command -v docker-compose >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) || echo "docker-compose unavailable: its check will skip"

# Everything, as CI runs it: lint, types, unit tests, integration tests with real processes.
test: install redis compose-tool lint
	$(PY) -m pytest -q -ra $(PYTEST_ARGS) tests

# Quick iteration: unit tests only (no worker processes).
test-quick: install
	$(PY) -m pytest -q -m "not integration" -x $(PYTEST_ARGS) tests

test-integration: install redis
	$(PY) -m pytest -q -ra -m integration $(PYTEST_ARGS) tests

# Trains an LSTM and a simple RNN on the built-in corpus and prints them side by side.
demo: install
	SEQQ_HOME=$${SEQQ_HOME:-$$HOME/.seqq} bash scripts/demo.sh $(SEQQ)

bench: install redis
	$(PY) tests/bench/train_overhead.py
	$(PY) tests/bench/data_pipeline.py
	$(PY) tests/bench/quality.py
	$(PY) tests/bench/scale.py
	$(PY) tests/bench/memory_probe.py

# On a machine with an NVIDIA GPU: the GPU tests, one job through `seqq worker --gpus all`, the
# overhead benchmark against a bare cuDNN loop (bf16 and fp32); one JSON summary on stdout and in
# SEQQ_GPU_CHECK_OUT (a file). Without a GPU it stops in one line before installing anything.
gpu-check:
	@$(PYTHON) tests/bench/gpu_check.py --preflight
	@$(MAKE) --no-print-directory install
	$(PY) tests/bench/gpu_check.py

# The MLflow compare view of a tiny comparison, screenshotted to docs/ (headless Chromium).
ui-check: install
	bash scripts/ui-check.sh docs/mlflow-compare.png

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
