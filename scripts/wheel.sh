#!/usr/bin/env bash
# Builds the `supa` wheel: the uniffi module, the pytest plugin and the
# `supa` binary as package data, tagged manylinux for the newest glibc
# either of the two native files needs. WHEEL_PROFILE=dev builds from the
# debug build (what `make test` checks); the default is release.
# Usage: scripts/wheel.sh OUT_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/wheels}
profile=${WHEEL_PROFILE:-release}
target_dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
package=$root/bindings/python/python/supa

cargo build --quiet --profile "$profile" -p supa
bin=$package/bin
trap 'rm -rf "$bin"' EXIT
mkdir -p "$bin"
# Symbols and debug info are for developers; the wheel carries the program.
strip -o "$bin/supa" "$root/target/$target_dir/supa"

# The highest GLIBC_2.N the binary links against is the floor of the tag;
# maturin refuses if its own module needs more.
glibc=$(objdump -T "$bin/supa" | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n | tail -1 | cut -d. -f2)
cd "$root/bindings/python"
maturin build --quiet --strip --profile "$profile" --compatibility "manylinux_2_${glibc}" --out "$out"
