# One-command set-up on a fresh machine: `make run` (service) and `make test` (suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
REID_DATA_DIR ?= reid-data
export REID_DATA_DIR

.PHONY: setup browser run test test-all lint bench clean

setup: $(VENV)/.installed

# torch is pinned and installed first: an unpinned torch (or timm before torch) pulls a
# multi-GB CUDA build. check_cpu_only fails the build if that happened anyway.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) torch==2.13.0 torchvision==0.28.0 -e '.[dev]'
	$(PY) scripts/check_cpu_only.py
	touch $@

# Browser tests drive Debian's headless Chromium through its chromedriver (no downloads at test time).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium chromium-driver; }

run: setup
	$(VENV)/bin/reid serve --data-dir $(REID_DATA_DIR)

test: setup browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q
	$(VENV)/bin/pytest -q -m cluster  # a local Ray runtime, 2 worker processes (ray is in the dev extra)

test-all: setup
	$(VENV)/bin/pytest -q -m ''

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) benchmarks/bench_embed.py
	$(PY) benchmarks/bench_identify.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
