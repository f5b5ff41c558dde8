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

.PHONY: install lint format typecheck test test-fast bench models run clean help fuzz prometheus lock loadtest soak

help:
	@echo "make run       install, create demo keys and models if absent, start the service on :8000"
	@echo "make test      install, lint, type-check and run every test (coverage >= 80%)"
	@echo "make models    generate demo keys and train the four demo models into var/"
	@echo "make bench     run every benchmark in bench/ (large models are kept in var/bench/large)"
	@echo "make fuzz      fuzz the scoring request path for FUZZ_SECONDS (default 600), growing tests/fuzz/corpus"
	@echo "make prometheus  a local Prometheus (UI on :9091) scraping \`make run\` with the alert rules"
	@echo "make format    apply ruff formatting"
	@echo "make lock      re-pin requirements*.lock from pyproject.toml (UPGRADE=1: newest)"
	@echo "make loadtest  locust mix against a local service for LOADTEST_SECONDS (60); fails on an unexpected failure or p99 > 500 ms"
	@echo "make soak      SOAK_SECONDS (180) of the mix with reloads every 5 s and a worker killed every 30 s; fails on memory/fd growth"

# Exactly the tested versions, hash-checked (requirements-dev.lock, see deploy/lock.py),
# then the project itself without dependencies: building it compiles the tree kernel.
$(STAMP): pyproject.toml setup.py engine/inference/_tree_kernel.c requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# Re-resolve the locks after changing pyproject.toml's dependencies (needs the package
# index); UPGRADE=1 moves every pin to the newest version pyproject.toml allows.
lock: install
	$(BIN)/python deploy/lock.py $(if $(UPGRADE),--upgrade)

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

var/keys/jwt/jwt-signing.key: | $(STAMP)
	$(BIN)/ml-service auth keygen --dir var/keys/jwt

# Start the service on :8000 (metrics on :9090) after printing demo tokens and a curl.
run: models var/keys/jwt/jwt-signing.key
	@scorer=$$($(BIN)/ml-service auth token --role scorer --subject demo-scorer --ttl 86400) && \
	admin=$$($(BIN)/ml-service auth token --role admin --subject demo-admin --ttl 86400) && \
	lead=$$(tr -d '\n' < examples/leads/auto.json) && \
	echo && echo "scorer token (24 h): $$scorer" && echo && \
	echo "admin token (24 h):  $$admin" && echo && \
	echo "Score a lead:" && \
	echo "curl -s -X POST http://localhost:8000/api/v1/score -H 'Authorization: Bearer $$scorer' -H 'Content-Type: application/json' -d '{\"vertical\": \"auto\", \"lead_data\": $$lead}'" && \
	echo && echo "Reload models: curl -s -X POST http://localhost:8000/api/v1/models/reload -H 'Authorization: Bearer $$admin'" && \
	echo "Metrics: curl -s http://localhost:9090/metrics    API page: http://localhost:8000/docs" && echo
	exec $(BIN)/ml-service serve

# Load tests (loadtests/, docs/loadtests.md): locust in its own process against a local
# service started from var/ like `make run` (free ports, its own RUN_DIR under
# var/loadtest/); reports (CSV, HTML) in var/loadtest/. Exit 1 on an unexpected failure,
# p99 over 500 ms or (soak) growth of memory or descriptors beyond the stated bounds.
LOADTEST_SECONDS ?= 60
SOAK_SECONDS ?= 180
loadtest: models var/keys/jwt/jwt-signing.key
	$(BIN)/python -m loadtests.run --duration $(LOADTEST_SECONDS)

soak: models var/keys/jwt/jwt-signing.key
	$(BIN)/python -m loadtests.soak --duration $(SOAK_SECONDS)

# Coverage-guided fuzzing of the scoring request path (tests/fuzz/, atheris): half of
# FUZZ_SECONDS per route. Afterwards the inputs that reach new code are merged into
# tests/fuzz/corpus/<route>/ (commit them: every test run replays the corpus); a crash
# is written to tests/fuzz/findings/ and stops the run: fix it, move it into the corpus.
FUZZ_SECONDS ?= 600
fuzz: install
	@mkdir -p tests/fuzz/findings
	@work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && \
	$(BIN)/python -c "import sys; from pathlib import Path; from tests.fuzz.harness import build_store; build_store(Path(sys.argv[1]))" "$$work/store" && \
	for route in score batch; do \
	  fuzz="$(BIN)/python -m tests.fuzz.fuzz_scoring --route=$$route --store=$$work/store" && \
	  mkdir "$$work/$$route" && \
	  $$fuzz -max_total_time=$$(( $(FUZZ_SECONDS) / 2 )) -timeout=20 -print_final_stats=1 \
	    -dict=tests/fuzz/scoring.dict -artifact_prefix=tests/fuzz/findings/$$route- \
	    "$$work/$$route" tests/fuzz/corpus/$$route || exit 1; \
	  $$fuzz -merge=1 tests/fuzz/corpus/$$route "$$work/$$route" 2>&1 | grep MERGE-OUTER | tail -1; \
	done

# A real Prometheus for `make run` (Debian package prometheus): the example config of
# deploy/prometheus/ pointed at localhost's metrics port, with the service's alert rules;
# its UI on :9091 (9090 is the service's metrics port). Data in var/prometheus/.
PROMETHEUS_PORT ?= 9091
prometheus:
	@command -v prometheus >/dev/null || { echo "prometheus is not installed: apt-get install prometheus" >&2; exit 1; }
	@mkdir -p var/prometheus
	sed -e 's|ml-service:9090|localhost:9090|' -e 's|^  - alerts.yml|  - $(CURDIR)/deploy/prometheus/alerts.yml|' \
	  deploy/prometheus/prometheus.yml > var/prometheus/prometheus.yml
	exec prometheus --config.file=var/prometheus/prometheus.yml --storage.tsdb.path=var/prometheus/data \
	  --web.listen-address=:$(PROMETHEUS_PORT)

bench: models
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.lock
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_http.py
	$(BIN)/python bench/bench_auth.py
	$(BIN)/python bench/bench_scrape.py
	$(BIN)/python bench/bench_feedback_store.py
	$(BIN)/python bench/bench_cache.py
	$(BIN)/python bench/bench_redis.py
	$(BIN)/python bench/bench_kernel.py
	$(BIN)/python bench/bench_bulk_score.py
	$(BIN)/python bench/bench_memory.py --workdir var/bench/large
	$(BIN)/python bench/bench_http_large.py --workdir var/bench/large

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
