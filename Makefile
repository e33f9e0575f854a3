# pgweave: the two commands are `make demo` and `make test`; both set up what they need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pgweave-installed
PYTEST_ARGS ?=

.PHONY: setup stack venv test soak demo demo-docs stop db-start db-stop db-dsn serve lint bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: stack venv  ## install PostgreSQL 15 + extensions and the project venv (idempotent)

stack:  ## Debian packages and pgvector 0.8.0 (docker/install-stack.sh, also used by the image)
	@bash docker/install-stack.sh

venv: $(STAMP)

# torch is pinned first: an unpinned torch pulls gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[setup] installing the project into $(VENV) (first time: a few minutes)"
	@$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[serve,dev]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/python -c "import torch, pgweave, sentence_transformers, pytest" || { echo "venv install failed"; exit 1; }
	@touch $(STAMP)

test: setup  ## run the test suite against a throwaway cluster and the local model server
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

soak: setup  ## the reliability storm for PGWEAVE_SOAK_SECONDS (default 600) instead of seconds
	PGWEAVE_SOAK_SECONDS=$${PGWEAVE_SOAK_SECONDS:-600} $(BIN)/pytest -p no:cacheprovider -s tests/reliability/test_storm.py

demo: setup  ## the main job: docs corpus, a vectorizer, background sync, search (FULL=1: all pages)
	$(BIN)/python -m pgweave.demo

demo-docs: setup  ## the demo, then the manual's HTML files vectorized by path (documents)
	DOCS=1 $(BIN)/python -m pgweave.demo

stop:  ## stop the demo's model server and the local cluster
	-@test -f .pgweave/serve.pid && kill $$(cat .pgweave/serve.pid) 2>/dev/null; rm -f .pgweave/serve.pid .pgweave/serve.url
	-@$(BIN)/pgweave db stop

db-start: setup  ## start the project-local cluster (.pgweave/db) and print its DSN
	@$(BIN)/pgweave db start

db-stop:  ## stop the project-local cluster
	@$(BIN)/pgweave db stop

db-dsn:  ## print the project-local cluster's DSN
	@$(BIN)/pgweave db dsn

serve: setup  ## run the local model server on :11434
	$(BIN)/pgweave serve

bench: setup  ## run the benchmarks in bench/ (about 35 minutes); tables also go to .pgweave/bench.md
	@mkdir -p .pgweave && : > .pgweave/bench.md
	@for b in bench/bench_search.py bench/bench_vectorizer.py bench/bench_freshness.py bench/bench_scale.py bench/bench_lifecycle.py bench/bench_overhead.py bench/bench_engine_io.py bench/bench_replicas.py bench/bench_runtime.py bench/bench_in_flight.py; do \
		echo "## $$b" | tee -a .pgweave/bench.md; \
		$(BIN)/python $$b | tee -a .pgweave/bench.md; test $${PIPESTATUS[0]} -eq 0 || exit 1; done

clean:  ## stop and delete the local cluster
	-@$(BIN)/pgweave db destroy
