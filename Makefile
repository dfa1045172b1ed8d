# lambda-meter — the two commands the README promises:
#   make demo   build, start the local Runtime API simulator, run a real Python function
#               through the wrapper for 20 invokes, print its EMF lines and a summary
#   make test   install what the tests need (idempotent), build, run every test and lint
#   make check  the edit loop: format, clippy and the unit tests (no runtimes, under a minute)
#   make dashboard REGION=…  a CloudWatch dashboard body for the settings in your environment
#   make layer  build the deployable layer zips for x86_64 and arm64 (glibc 2.26)
#   make bench  measure lambda-meter against doing nothing and the alternatives; writes BENCHMARKS.md
#   make soak   100,000 invokes through the Python client, with and without the library
#   make fuzz   libFuzzer on the parser, tracker and encoder (FUZZ_SECONDS per target, default 300)
#   make hot-functions  write link/hot-functions.txt again (the code layout) from callgrind runs

CARGO ?= cargo
DEMO_VENV := target/demo-env/venv
DEMO_LAYER := target/demo-layer

.PHONY: all build test-deps test check demo dashboard layer bench-deps bench hot-functions soak fuzz clean

all: build

build:
	$(CARGO) build --workspace --all-targets

test-deps:
	sh tests/setup.sh

layer:
	sh layer/build.sh

test: test-deps layer
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --all-targets
	$(CARGO) build -p lambda_meter --features alloc-guard --target-dir target/alloc-guard
	$(CARGO) build -p lambda_meter --features panic-inject --target-dir target/panic-inject
	sh tests/run-all.sh

# Format, lint and unit tests: what an edit can break in the pure core, in seconds. `make test`
# stays the full suite (real runtimes, the layer, the README's figures).
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test -q --workspace --lib --bins

# The demo needs Rust, Python 3 and the simulator only: it builds the library and the
# simulator (not the workspace) and installs one wheel.
demo:
	sh tests/setup-demo.sh
	$(CARGO) build --release -p lambda_meter -p lambda-sim
	sh layer/assemble.sh target/release/liblambda_meter.so $(DEMO_LAYER)
	cd tests/functions/python && ../../../target/release/lambda-sim \
		--events demo-events.json --function-name demo-orders \
		--wrapper ../../../$(DEMO_LAYER)/lambda-meter --summary -- \
		../../../$(DEMO_VENV)/bin/python -m awslambdaric handler.dispatch

# The dashboard body for the settings in your environment (LAMBDA_METER_*, POWERTOOLS_*), on
# stdout: a short run of the demo function under them gives the records it is built from.
REGION ?=
dashboard:
	@test -n '$(value REGION)' || { echo "usage: make dashboard REGION=eu-west-1 [LOG_GROUPS='/aws/lambda/a /aws/lambda/b']" >&2; exit 2; }
	@sh tests/setup-demo.sh >&2
	@$(CARGO) build -q --release -p lambda_meter -p lambda-sim
	@sh layer/assemble.sh target/release/liblambda_meter.so $(DEMO_LAYER) >/dev/null
	@cd tests/functions/python && ../../../target/release/lambda-sim --events dashboard-events.json \
		--wrapper ../../../$(DEMO_LAYER)/lambda-meter -- \
		../../../$(DEMO_VENV)/bin/python -m awslambdaric handler.dispatch 2>/dev/null | \
		../../../layer/dashboard --region '$(value REGION)' $(foreach g,$(LOG_GROUPS),--log-group '$(g)')

# What the tests need, and valgrind.
bench-deps:
	sh tests/setup.sh --bench

bench: bench-deps layer
	$(CARGO) build --release --workspace
	$(CARGO) run --release -q -p lambda-meter-bench --bin lambda-meter-bench

# The functions that run, in the order the linker places them (see ARCHITECTURE.md).
hot-functions: bench-deps
	$(CARGO) build --release --workspace
	python3 link/hot-functions.py

soak: test-deps
	$(CARGO) build --workspace --all-targets
	LAMBDA_METER_SOAK_INVOKES=100000 $(CARGO) test --test soak -- --nocapture

FUZZ_SECONDS ?= 300
FUZZ_TARGETS := http_chunkings http_garbage http_lines_any_split http_shapes tracker_orders emf_records
# cargo fuzz needs nightly features (sanitizer flags); RUSTC_BOOTSTRAP lets the stable
# toolchain, the only one these machines have, accept them.
fuzz:
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

clean:
	$(CARGO) clean
