# The project's verify gate: read-only checks, then every test. `.ci/run` calls `make test`.
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR

.PHONY: test lint unit-and-cluster-tests run fix

test: lint unit-and-cluster-tests

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release -- -D warnings
	@# Log messages are lowercase without trailing punctuation; payloads never reach logs.
	@! grep -rnE '(info|warn|error|debug|trace)!\([^;]*"[A-Z]' --include='*.rs' node client proto || (echo "log messages must start lowercase" && false)
	@# One version of each RPC and telemetry crate across the workspace.
	@! cargo tree -d -e normal --workspace --depth 0 --prefix none 2>/dev/null | grep -E '^(tonic|prost|opentelemetry|openraft) ' || (echo "duplicate tonic/prost/opentelemetry/openraft versions" && false)

unit-and-cluster-tests:
	cargo nextest run --workspace --release --no-fail-fast

run:
	cargo run --release --bin streamd

fix:
	cargo fmt --all
