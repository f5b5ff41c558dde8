# The two commands a new user needs: `make run` and `make test` (see README.md).
# Everything installs into .venv; nothing is installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
export OMP_NUM_THREADS ?= 1

# Demo state lives in var/ (git-ignored): keys, synthetic data, models.
DEMO_ROWS ?= 20000
VERTICALS := auto home health life

.PHONY: install lint format typecheck test test-fast bench models run clean help

help:
	@echo "make run       install, create demo keys and models if absent, score a demo lead"
	@echo "make test      install, lint, type-check and run every test (coverage >= 80%)"
	@echo "make models    generate demo keys and train the four demo models into var/"
	@echo "make bench     run the engine benchmark (bench/bench_engine.py)"
	@echo "make format    apply ruff formatting"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=80

test-fast: install
	$(BIN)/python -m pytest -x -q

var/keys/model-signing.key: | $(STAMP)
	$(BIN)/ml-service keys generate --dir var/keys

models: install var/keys/model-signing.key
	@for v in $(VERTICALS); do \
	  if [ -z "$$($(BIN)/ml-service models list --vertical $$v --json | grep '"active": true')" ]; then \
	    $(BIN)/ml-service synth --vertical $$v --rows $(DEMO_ROWS) --seed 7 --out var/data/$$v.csv && \
	    $(BIN)/ml-service train --vertical $$v --data var/data/$$v.csv --version 1.0.0 --activate \
	      || exit 1; \
	  else echo "$$v: active model present"; fi; \
	done

# The HTTP service (port 8000, metrics on 9090) is issue 3; until then `run` prepares
# everything it will need and scores a demo lead through the engine.
run: models
	$(BIN)/ml-service score --vertical auto --explain --json @examples/leads/auto.json
	@echo "Models are ready in var/models; the HTTP service arrives with issue 3."

bench: models
	$(BIN)/python bench/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
