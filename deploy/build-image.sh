#!/usr/bin/env bash
# Builds static `streamd` and `streamctl` and the FROM scratch image around them with buildah.
#
#   deploy/build-image.sh [IMAGE]        IMAGE defaults to localhost/streamd:<workspace version>
#
# CARGO_TARGET_DIR is honoured (the static build lands in $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu,
# apart from the ordinary build). Exits 77 with the reason when buildah is missing and cannot be
# installed, so callers can tell "skipped" from "failed".
set -euo pipefail
cd "$(dirname "$0")/.."

TRIPLE=x86_64-unknown-linux-gnu
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IMAGE=${1:-localhost/streamd:${VERSION}}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SKIP=77

if ! command -v buildah >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q buildah >/dev/null 2>&1 ||
      (apt-get update -q >/dev/null && apt-get install -y -q buildah >/dev/null) || true
  fi
  if ! command -v buildah >/dev/null 2>&1; then
    echo "build-image: SKIPPED: buildah is not installed (Debian: apt-get install buildah)" >&2
    exit "$SKIP"
  fi
fi

# glibc, statically linked: the node resolves its peers' DNS names (the StatefulSet's stable
# names) with glibc's built-in DNS resolver, which needs no NSS modules on disk. An explicit
# --target keeps RUSTFLAGS off build scripts and proc macros, which must stay dynamic.
start=$(date +%s)
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$TRIPLE" \
  -p streamd -p streamd-ctl
echo "build-image: static build took $(($(date +%s) - start)) s"

bin="$TARGET_DIR/$TRIPLE/release"
for b in streamd streamctl; do
  if ! file "$bin/$b" | grep -Eq 'statically linked|static-pie linked'; then
    echo "build-image: $bin/$b is not statically linked: $(file -b "$bin/$b")" >&2
    exit 1
  fi
done

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$bin/streamd" "$bin/streamctl" "$context/"
# Debug line tables are 3/4 of the binary (91 MB -> 22 MB for streamd); symbols stay, so panic
# backtraces still name functions. The unstripped binaries remain in the target dir.
if command -v strip >/dev/null 2>&1; then
  strip --strip-debug "$context/streamd" "$context/streamctl"
fi
mkdir "$context/data"
# Files to COPY keep their mode; the data directory is the node's and only its.
chmod 0755 "$context/streamd" "$context/streamctl"
chmod 0700 "$context/data"

buildah build --layers=false --build-arg "VERSION=$VERSION" -f deploy/Containerfile -t "$IMAGE" "$context"
echo "build-image: built $IMAGE ($(du -sh "$context/streamd" | cut -f1) streamd, $(du -sh "$context/streamctl" | cut -f1) streamctl)"
