#!/usr/bin/env bash
# The whole test suite: installs the components the tests drive (scripts/setup-test-deps.sh),
# then runs every test of the workspace. Needs root: the tests bind ports below 1024 and, for the
# local target, make network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (sudo scripts/test.sh): the tests install packages and bind ports 80/443" >&2
  exit 1
fi
scripts/setup-test-deps.sh
cargo test --workspace --no-fail-fast "$@"
