# Herald's dev loop. CI runs `make test` (through .ci/run), so this file cannot go stale.

SHELL := /bin/bash
ifeq ($(strip $(HERALD_VENV)),)
HERALD_VENV := $(CURDIR)/.venv
endif
export HERALD_VENV
# cargo-lambda, moto and the SAM CLI live in the virtualenv.
export PATH := $(HERALD_VENV)/bin:$(PATH)

.PHONY: run test tools browser fmt lint validate unit e2e start send serve cost latency bench chaos perf

## run: stand Herald up on the local AWS emulator and push every sample event through it
run: tools
	cargo run --quiet -p herald-local -- up

## test: formatting, clippy, the SAM template, and every test (unit and end-to-end)
test: tools browser fmt lint validate
	cargo test --workspace --all-targets

## tools: the pinned Python tools (moto, cargo-lambda, cfn-lint, SAM CLI) in $(HERALD_VENV)
tools:
	@infra/bootstrap.sh

## browser: Debian's chromium and chromium-driver, for the inbox's browser test (installed when missing)
browser:
	@infra/browser.sh

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

validate: tools
	infra/validate.sh

unit:
	cargo test --workspace --lib

e2e: tools browser
	cargo test -p herald-e2e -p herald-local

## start: the emulator with Herald's resources, processing what reaches the bus; for cargo lambda watch / invoke (Ctrl-C stops it)
start: tools
	cargo run --quiet -p herald-local -- start

## send: make send FILES="events/intake/10-order-created.json ..."
send: tools
	cargo run --quiet -p herald-local -- send $(FILES)

## serve: the webhooks and the api on http://127.0.0.1:8787, processing what reaches the bus as start does
serve: tools
	cargo run --quiet -p herald-local -- serve

## cost: requests, billed units and dollars per email notification, measured on the local stack (make cost N=1000 [CUSTOMERS=1])
cost: tools
	cargo run --quiet -p herald-local -- cost --notifications $(or $(N),200) $(if $(CUSTOMERS),--customers $(CUSTOMERS))

## latency: milliseconds from a feed change to the customer's open WebSocket on the served local stack (make latency N=50)
latency: tools
	cargo run --quiet -p herald-local -- latency --notifications $(or $(N),50)

## chaos: N events through a fresh stage with provider faults, duplicates and crashes; counts lost and doubled sends from the providers' records (make chaos N=1000 [FAULTS=0.1 DUPLICATES=0.05 CRASHES=0.01 ORGS=4 SEED=1])
chaos: tools
	cargo run --quiet -p herald-local -- chaos --events $(or $(N),300) --orgs $(or $(ORGS),4) --seed $(or $(SEED),1) \
		--provider-faults $(or $(FAULTS),0.1) --duplicate-events $(or $(DUPLICATES),0.05) \
		--duplicate-messages $(or $(DUPLICATES),0.05) --crash-after-send $(or $(CRASHES),0.01)

## bench: the criterion benchmarks (release, memory ports), then a table of µs per operation and notifications per second per core
bench:
	infra/bench.sh

## perf: each function as a Lambda: release binaries against a local Runtime API on the emulator; size, cold start, warm CPU, peak memory (make perf [N=100] [REPS=5])
perf: tools
	cargo build --release -p herald-intake -p herald-dispatch -p herald-projector -p herald-scheduler -p herald-perf-hello
	cargo run --quiet -p herald-local -- perf $(if $(N),--notifications $(N)) $(if $(REPS),--repetitions $(REPS))
