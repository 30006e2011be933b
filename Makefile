# Paddock — developer and CI entry points (GNU make). `make help` lists the targets.
#
# Everything outside the checkout lives in /opt/paddock (nsjail, the sandbox Python packages,
# the test-client venv) and /var/cache/paddock (downloads); see deploy/README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# The steps of `test` depend on each other (deps, then one build, then the suites).
.NOTPARALLEL:

PREFIX ?= /opt/paddock
TESTENV := $(PREFIX)/testenv
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
PYTEST_ARGS ?= -q --timeout=600 -p no:cacheprovider
# nsjail from deploy/install-deps.sh, cargo from rustup.
export PATH := $(PREFIX)/bin:$(HOME)/.cargo/bin:$(PATH)

.PHONY: help deps build test test-rust test-benches check-packages test-e2e lint fmt-check clippy bench bench-e2e release run

help:
	@echo "Paddock make targets:"
	@echo "  deps            install/verify system deps, nsjail, sandbox Python set, test clients (deploy/install-deps.sh)"
	@echo "  build           cargo build --workspace --all-targets (debug; what the tests use)"
	@echo "  test            deps + build + Rust tests (nextest) + bench compile check + package smokes + Python e2e"
	@echo "  lint            cargo fmt --check + cargo clippy --all-targets -D warnings"
	@echo "  bench           cargo bench --workspace (release build)"
	@echo "  bench-e2e       release edge + worker: execute over TLS (warm, fresh), tools/list, the 429 flood"
	@echo "  run             deps + release build of edge and worker + deploy/run.sh (foreground, Ctrl-C stops)"
	@echo "  check-packages  run every smoke of sandbox-profiles/packages.toml outside a jail"

deps:
	@echo "==> deps: deploy/install-deps.sh"
	@bash deploy/install-deps.sh

build:
	@echo "==> build: $(CARGO) build --workspace --all-targets (debug)"
	@$(CARGO) build --workspace --all-targets

# Each suite runs even when an earlier one failed; the target fails at the end if any did.
# The suites use the debug binaries `build` just made (PADDOCK_EDGE_BIN, PADDOCK_WORKER_BIN)
# instead of each test process running its own `cargo build -p …` (a per-package build
# unifies features differently and recompiles).
test: deps build
	@export PADDOCK_EDGE_BIN="$${PADDOCK_EDGE_BIN:-$(TARGET_DIR)/debug/paddock-edge}"; \
	export PADDOCK_WORKER_BIN="$${PADDOCK_WORKER_BIN:-$(TARGET_DIR)/debug/paddock-worker}"; \
	fail=""; \
	$(MAKE) --no-print-directory test-rust || fail="$$fail test-rust"; \
	$(MAKE) --no-print-directory test-benches || fail="$$fail test-benches"; \
	$(MAKE) --no-print-directory check-packages || fail="$$fail check-packages"; \
	$(MAKE) --no-print-directory test-e2e || fail="$$fail test-e2e"; \
	if [ -n "$$fail" ]; then echo "==> test: FAILED:$$fail"; exit 1; fi; \
	echo "==> test: all suites passed"

test-rust:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "==> test-rust: $(CARGO) nextest run --workspace --no-fail-fast"; \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		echo "==> test-rust: cargo-nextest not found, $(CARGO) test --workspace --no-fail-fast"; \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

# Benches must keep compiling; built in the debug test profile, not run (`make bench` runs them).
test-benches:
	@echo "==> test-benches: $(CARGO) test --workspace --benches --no-run (compile check, debug)"
	@$(CARGO) test --workspace --benches --no-run

check-packages:
	@echo "==> check-packages: /usr/bin/python3 deploy/check-packages.py (smokes outside a jail)"
	@/usr/bin/python3 deploy/check-packages.py --packages $(PREFIX)/python

# pytest exit status 5 means "no tests collected": not a failure while tests/e2e is young.
test-e2e:
	@if [ ! -d tests/e2e ]; then echo "==> test-e2e: no tests/e2e, skipped"; exit 0; fi; \
	echo "==> test-e2e: $(TESTENV)/bin/python -m pytest tests/e2e $(PYTEST_ARGS)"; \
	rc=0; $(TESTENV)/bin/python -m pytest tests/e2e $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "==> test-e2e: no tests collected, skipped"; exit 0; fi; \
	exit $$rc

lint: fmt-check clippy

fmt-check:
	@echo "==> fmt-check: $(CARGO) fmt --all -- --check"
	@$(CARGO) fmt --all -- --check

clippy:
	@echo "==> clippy: $(CARGO) clippy --workspace --all-targets -- -D warnings"
	@$(CARGO) clippy --workspace --all-targets -- -D warnings

bench:
	@echo "==> bench: $(CARGO) bench --workspace"
	@$(CARGO) bench --workspace

# End-to-end harnesses (real edge and worker, release builds, TLS); see benches/*.md.
bench-e2e: deps release
	@command -v wrk >/dev/null || apt-get install -y -q --no-install-recommends wrk
	@bash benches/execute_e2e.sh 10 32
	@bash benches/edge_tools_list.sh
	@bash benches/quota_flood.sh

release:
	@echo "==> release: $(CARGO) build --release -p paddock-edge -p paddock-worker"
	@$(CARGO) build --release -p paddock-edge -p paddock-worker

run: deps release
	@echo "==> run: deploy/run.sh"
	@bash deploy/run.sh
