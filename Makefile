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

.PHONY: venv test lint sample-data demo bench freeze clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .

sample-data: venv
	$(PY) -m preprocessing.make_sample_dataset $(SAMPLE_DIR)

demo: venv
	bash scripts/demo.sh $(SAMPLE_DIR) $(DEMO_DIR)

bench: venv
	$(PY) bench/preprocess.py --write-docs docs/benchmarks.md
	$(PY) bench/train.py
	$(PY) bench/predict.py

clean-demo:
	rm -rf $(DEMO_DIR)

freeze: venv
	$(PY) -m pip freeze --all | grep -v -E '^(pip|wheel|setuptools)==' > requirements.lock.txt
	@echo "review requirements.lock.txt and copy the pins into requirements.txt"
