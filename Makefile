# Switchyard: build, run, test. `make run` and `make test` work on a fresh machine:
# they install what they need (the wasm32-wasip2 target) and build everything.

CARGO       ?= cargo
WASM_TARGET := wasm32-wasip2
WASM_OUT    := target/$(WASM_TARGET)/wasm
DEST_OUT    := target/destinations
GUEST_OUT   := target/test-guests

# Bundled destinations in Rust: <name> is built from destinations/<name> (crate switchyard-<name>).
DESTINATIONS := webhook mixpanel ga4 posthog segment http
# Bundled destinations in other languages: destinations/<name>/Makefile builds <name>.wasm there
# (JavaScript with componentize-js from npm, Python with componentize-py from PyPI).
FOREIGN_DESTINATIONS := slack amplitude
# Bundled transformations in Rust: <name> is built from transforms/<name> (crate switchyard-<name>),
# into the same plugins directory as the destinations (one catalog serves both kinds).
TRANSFORMS   := mask-pii consent
# Bundled transformations in other languages: transforms/<name>/Makefile builds <name>.wasm there.
FOREIGN_TRANSFORMS := mapping tracking-plan
# Segment's catalog entries the end-to-end tests run (tests/segment_catalog.rs): built
# from catalog/ into target/catalog, as `catalog:<name>.wasm`, cached by their inputs.
CATALOG_TEST_ENTRIES := braze klaviyo iterable mixpanel tiktok-conversions customerio snap-conversions-api \
  facebook-conversions-api hubspot intercom salesforce linkedin-conversions
# Test-only guests (never bundled): tests/guests/<name>.
TEST_GUESTS  := misbehave misbehave-transform drift

catalog-test-entries:
	$(MAKE) --no-print-directory -C catalog entries ENTRIES="$(CATALOG_TEST_ENTRIES)"

## The differential check over every catalog entry with presets (minutes: not in `make test`):
## the verdicts into catalog/differential/results.json, and the docs pages from them.
catalog-differential: catalog-test-entries
	$(CARGO) build -p switchyard
	cd catalog && node differential/run.mjs --all && node docs.mjs

.PHONY: catalog-test-entries catalog-differential fuzz soak sdks all setup nats-server wrk build destinations test-guests run test lint fmt bench bench-quick bench-guests clean-data help install golden docs docs-check

all: build

help:
	@echo "make run    - build and serve the default config (config/default.toml)"
	@echo "make test   - build everything and run the whole test suite"
	@echo "make install - put the switchyard command on your PATH (cargo install, into ~/.cargo/bin)"
	@echo "make build  - host at target/release/switchyard, destinations at $(DEST_OUT)/<name>.wasm"
	@echo "make lint   - rustfmt --check and clippy -D warnings"
	@echo "make bench  - benchmarks against their baselines (bench-quick: about 5 minutes)"
	@echo "make soak   - the fault loops at full length (kill -9, full disk, NATS faults)"
	@echo "make fuzz   - fuzz the ingest and config parsers (FUZZ_SECONDS per target)"
	@echo "make golden - record the bundled destinations' golden files again (tests/golden.rs)"

## Toolchain: the wasm target for guest components (rust-toolchain.toml names it too).
setup:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## nats-server (Debian package) for the NATS JetStream store's tests.
nats-server:
	@command -v nats-server >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server; }

destinations: setup
	$(CARGO) build $(addprefix -p switchyard-,$(DESTINATIONS)) --target $(WASM_TARGET) --profile wasm
	@mkdir -p $(DEST_OUT)
	@for d in $(DESTINATIONS); do cp $(WASM_OUT)/switchyard_$$d.wasm $(DEST_OUT)/$$d.wasm; echo "built $(DEST_OUT)/$$d.wasm"; done
	@for d in $(FOREIGN_DESTINATIONS); do $(MAKE) --no-print-directory -C destinations/$$d || exit 1; cp destinations/$$d/$$d.wasm $(DEST_OUT)/$$d.wasm; echo "built $(DEST_OUT)/$$d.wasm"; done
	$(CARGO) build $(addprefix -p switchyard-,$(TRANSFORMS)) --target $(WASM_TARGET) --profile wasm
	@for t in $(TRANSFORMS); do cp $(WASM_OUT)/switchyard_$$(echo $$t | tr - _).wasm $(DEST_OUT)/$$t.wasm; echo "built $(DEST_OUT)/$$t.wasm"; done
	@for t in $(FOREIGN_TRANSFORMS); do $(MAKE) --no-print-directory -C transforms/$$t || exit 1; cp transforms/$$t/$$t.wasm $(DEST_OUT)/$$t.wasm; echo "built $(DEST_OUT)/$$t.wasm"; done

test-guests: setup
	$(CARGO) build $(addprefix -p switchyard-,$(TEST_GUESTS)) --target $(WASM_TARGET) --profile wasm
	@mkdir -p $(GUEST_OUT)
	@for d in $(TEST_GUESTS); do cp $(WASM_OUT)/switchyard_$$(echo $$d | tr - _).wasm $(GUEST_OUT)/$$d.wasm; done

build: destinations
	$(CARGO) build --release -p switchyard
	@echo "built target/release/switchyard"

run: build
	./target/release/switchyard run

## The `switchyard` command on PATH (~/.cargo/bin), for `switchyard new` and `switchyard dev`
## anywhere; the bundled destinations stay in $(DEST_OUT) (`make destinations`).
install:
	$(CARGO) install --locked --path host

## The whole suite: unit tests, then end-to-end tests against real components on loopback.
## The official SDKs the ingest suite sends through (tests/sdks/).
sdks:
	$(MAKE) --no-print-directory -C tests/sdks/python
	$(MAKE) --no-print-directory -C tests/sdks/browser

test: destinations test-guests nats-server sdks catalog-test-entries
	$(MAKE) --no-print-directory docs-check
	@for d in $(FOREIGN_DESTINATIONS); do $(MAKE) --no-print-directory -C destinations/$$d test || exit 1; done
	@for t in $(FOREIGN_TRANSFORMS); do $(MAKE) --no-print-directory -C transforms/$$t test || exit 1; done
	$(MAKE) --no-print-directory -C kits/js test
	$(MAKE) --no-print-directory -C catalog test
	$(CARGO) build -p switchyard
	@echo "== the differential check over a sample of Segment's catalog (catalog/differential; 8 of the verified entries: each costs a build and a compile, and make test keeps to 30 minutes) =="
	cd catalog && node differential/run.mjs --sample 8
	$(CARGO) test --no-fail-fast -p switchyard-destination-kit $(addprefix -p switchyard-,$(DESTINATIONS)) \
	  -p switchyard-transform-kit $(addprefix -p switchyard-,$(TRANSFORMS))
	$(CARGO) test --no-fail-fast -p switchyard -p switchyard-e2e
	@echo "== the delivery, ingest and hot-load suites again, on the NATS JetStream store (with -p switchyard, so the features match the pass above and nothing is compiled again) =="
	SWITCHYARD_TEST_STORE=nats $(CARGO) test --no-fail-fast -p switchyard -p switchyard-e2e --test delivery --test concurrency --test ingest --test hotload --test transforms --test trial

## The bundled destinations' golden recordings, recorded again against a loopback
## receiver (do it when a change to what a destination sends is meant).
golden: destinations test-guests
	$(CARGO) build -p switchyard
	$(CARGO) test -p switchyard-e2e --test golden -- --ignored record_the_golden_files --nocapture

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy -p switchyard -p switchyard-e2e -p switchyard-bench --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --document-private-items -p switchyard
	$(CARGO) clippy $(addprefix -p switchyard-,$(DESTINATIONS) $(TRANSFORMS) $(TEST_GUESTS)) --target $(WASM_TARGET) -- -D warnings

## Benchmarks (not tests): Switchyard and its baselines side by side; see BENCHMARKS.md.
## wrk (Debian package): the ingest scenarios' load generator.
wrk:
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

bench: build nats-server wrk bench-guests
	$(CARGO) build --release -p switchyard-bench
	./target/release/switchyard-bench run --out bench/results

bench-quick: build nats-server wrk bench-guests
	$(CARGO) build --release -p switchyard-bench
	./target/release/switchyard-bench run --quick --out bench/results/quick

## The floors of the dispatch benchmark (bench/guests/README.md).
bench-guests: destinations
	$(MAKE) --no-print-directory -C bench/guests

## Fuzzing (not part of `make test`): cargo-fuzz (from crates.io) on the stable toolchain
## (RUSTC_BOOTSTRAP lets it pass its -Z flags), FUZZ_SECONDS per target. A crash is kept
## in fuzz/artifacts/<target>/; add it to host/tests/properties.rs `regressions`.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ingest_body config nats_message
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s =="; \
	  mkdir -p fuzz/corpus/$$t; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz --sanitizer none $$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=65536 || exit 1; \
	done

## Fault loops at full length (the short forms run in `make test`): kill -9 cycles under
## load, a full disk, and NATS servers killed, restarted, emptied and cut off (tests/soak.rs).
soak: destinations test-guests nats-server
	$(CARGO) build -p switchyard
	SWITCHYARD_SOAK=full $(CARGO) test -p switchyard-e2e --test soak -- --nocapture --test-threads 1

fmt:
	$(CARGO) fmt --all

clean-data:
	rm -rf ./data

## The book (docs/book, mdBook) into target/book; mdbook is installed into target/tools the first time.
docs:
	@[ -x target/tools/bin/mdbook ] || $(CARGO) install mdbook --locked --no-default-features --root target/tools
	target/tools/bin/mdbook build docs/book

## The docs' relative links, the book's SUMMARY.md and the config keys documented (docs/check.mjs).
docs-check:
	node docs/check.mjs
