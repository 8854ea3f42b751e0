# One entry point for every chore; CI runs `make test` through .ci/run.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := $(CURDIR)/.venv
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export CARGO_TERM_COLOR := never

.PHONY: help deps build lint test-rust bindings pytest cluster-test wheel test bench bench-load bench-meta bench-auth bench-storage bench-realtime bench-functions bench-studio bench-sdk fuzz drills soak up clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

deps: ## install missing apt packages and the pinned .venv
	@scripts/bootstrap.sh

build: deps ## build every crate
	cargo build --workspace --all-targets

lint: deps ## rustfmt and clippy, warnings are errors
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

test-rust: deps ## unit and integration tests of every crate
	cargo test --workspace
	cargo run --quiet -p example-keys-and-tokens >/dev/null

bindings: deps ## build the Python package `supa` into .venv with maturin
	cd bindings/python && maturin develop --quiet

wheel: deps ## the `supa` wheel (bindings, pytest plugin, the `supa` binary; manylinux) into target/wheels
	scripts/wheel.sh $(CURDIR)/target/wheels

pytest: bindings ## the pytest suite: bindings, and `supa up` as a subprocess
	cargo build --quiet -p supa -p supa-rest-bin -p supa-gateway -p supa-auth-bin -p supa-storage-bin -p supa-realtime-bin -p supa-functions-bin
	cargo build --quiet -p supa-benches --bin fixed-rate
	pytest -q tests --ignore=tests/cluster --ignore=tests/drills

cluster-test: deps ## the multi-node rehearsal (management and worker clusters, Redis, two gateways behind nginx) and the fault drills' short form
	cargo build --quiet -p supa -p supa-tenant-manager -p supa-gateway -p supa-rest-bin
	pytest -q tests/cluster tests/drills

drills: deps ## the fault drills, each fault held DRILL_SECS seconds (20 unless set); the report goes to benches/drills.json
	cargo build --quiet -p supa -p supa-tenant-manager -p supa-gateway -p supa-rest-bin
	SUPA_DRILL_SECS=$${DRILL_SECS:-20} SUPA_DRILL_REPORT=$(CURDIR)/benches/drills.json pytest -q -s tests/drills

test: lint test-rust pytest cluster-test ## everything CI checks

bench: deps ## criterion micro-benchmarks, control-plane latency, then gateway load (wrk, nginx)
	cargo bench -p supa-benches --bench keys
	python3 benches/report.py
	cargo bench -p supa-benches --bench control_plane
	$(MAKE) bench-load
	$(MAKE) bench-meta
	$(MAKE) bench-auth
	$(MAKE) bench-storage
	$(MAKE) bench-realtime
	$(MAKE) bench-functions
	$(MAKE) bench-studio
	$(MAKE) bench-sdk

bench-load: ## gateway load benchmarks against nginx and supa-rest direct (benches/load)
	@scripts/bootstrap.sh bench
	cargo build --release --quiet -p supa -p supa-rest-bin -p supa-gateway
	cargo build --release --quiet -p supa-benches --bin fixed-rate --bin many-projects
	python3 benches/load/run.py

bench-meta: deps ## supa-meta against postgres-meta on 1,000 tables (benches/meta)
	cargo build --release --quiet -p supa-meta-bin
	python3 benches/meta/run.py

bench-auth: ## auth server: password grants against raw bcrypt, refresh grants, GET /user (benches/auth)
	@scripts/bootstrap.sh bench
	cargo build --release --quiet -p supa
	cargo build --release --quiet -p supa-benches --bin bcrypt-rate
	python3 benches/auth/run.py

bench-storage: ## storage: 1 GiB up/down against cp, 4 KiB downloads against nginx, uploads (benches/storage)
	@scripts/bootstrap.sh bench
	cargo build --release --quiet -p supa
	python3 benches/storage/run.py

bench-realtime: ## realtime: broadcast fan-out (1,000 sockets in channels of 6), memory per idle socket, Postgres changes latency (benches/realtime)
	@scripts/bootstrap.sh bench
	cargo build --release --quiet -p supa
	python3 benches/realtime/run.py

bench-studio: ## Studio's pages with 1,000 projects and 1,000 tables, against nginx serving the same bytes (benches/studio)
	@scripts/bootstrap.sh bench
	cargo build --release --quiet -p supa
	python3 benches/studio/run.py

bench-functions: ## edge functions: cold starts, warm calls against Deno direct, 1,000 idle functions (benches/functions)
	@scripts/bootstrap.sh bench
	cargo build --release --quiet -p supa
	python3 benches/functions/run.py

bench-sdk: deps ## what a throwaway project costs a test suite: the release wheel in a venv of its own, the fixture against CREATE DATABASE (benches/sdk)
	scripts/wheel.sh $(CURDIR)/target/wheels
	rm -rf target/bench-sdk-venv && python3 -m venv target/bench-sdk-venv
	sed 's/\[[a-z,]*\]//' tests/requirements.txt > target/bench-sdk-venv/constraints.txt
	target/bench-sdk-venv/bin/pip install -q --disable-pip-version-check -c target/bench-sdk-venv/constraints.txt target/wheels/supa-*.whl pytest
	env -u VIRTUAL_ENV target/bench-sdk-venv/bin/python benches/sdk/run.py

soak: deps ## SOAK_SECS (600) of every service's requests at half of saturation, memory, descriptors, pools and slot lag sampled every 10 s (benches/soak)
	cargo build --release --quiet -p supa
	cargo build --release --quiet -p supa-benches --bin fixed-rate
	python3 benches/soak/run.py

fuzz: deps ## every fuzz target for FUZZ_SECS seconds (600 unless set); `make test` runs each for 1 s
	SUPA_FUZZ_SECS=$${FUZZ_SECS:-600} cargo test --release --quiet -p supa-core -p supa-keys -p supa-rest \
	  -p supa-realtime -p supa-storage -- fuzz_ --test-threads=1 --nocapture 2>&1 \
	  | grep -oE 'fuzz [^_].*cases.*|.*panicked.*|smallest input.*|test result: FAILED.*'

up: deps ## run the whole platform on the embedded default (data in ./.supa)
	cargo build --release --quiet -p supa
	target/release/supa up

clean: ## remove build output and the venv
	cargo clean
	rm -rf $(VENV)
