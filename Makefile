# The README's commands. `make venv` is a no-op unless requirements.txt changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE_DIR ?= data/sample
DEMO_DIR ?= output/demo
export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONPATH := $(CURDIR)

.PHONY: venv test lint sample-data demo bench gpu-check freeze clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

sample-data: venv
	$(PY) -m sample_data.make_sample_dataset $(SAMPLE_DIR)

demo: venv
	bash scripts/demo.sh $(SAMPLE_DIR) $(DEMO_DIR)

BENCH_DIR ?= output/bench

# Benchmarks on the default sample set (generated and preprocessed once in $(BENCH_DIR)) and on
# ../shared/data/real_small when present; each script replaces its section of docs/benchmarks.md.
bench: venv
	test -f $(BENCH_DIR)/folds.csv || { $(PY) -m sample_data.make_sample_dataset $(BENCH_DIR) \
		&& ./preprocess_data.sh $(BENCH_DIR); }
	$(PY) bench/preprocess.py --write-docs docs/benchmarks.md
	$(PY) bench/markers.py --write-docs docs/benchmarks.md
	$(PY) bench/train.py --data-dir $(BENCH_DIR) --write-docs docs/benchmarks.md
	$(PY) bench/predict.py --write-docs docs/benchmarks.md
	$(PY) bench/predict.py --stages --write-docs docs/benchmarks.md
	$(PY) bench/predict.py --laptop --write-docs docs/benchmarks.md
	$(PY) bench/quality.py --write-docs docs/benchmarks.md

# What CI cannot run: needs one CUDA GPU (bench/gpu_check.sh --dry-run checks the script on the CPU).
gpu-check: venv
	bash bench/gpu_check.sh

clean-demo:
	rm -rf $(DEMO_DIR)

freeze: venv
	$(PY) -m pip freeze --all | grep -v -E '^(pip|wheel|setuptools)==' > requirements.lock.txt
	@echo "review requirements.lock.txt and copy the pins into requirements.txt"
