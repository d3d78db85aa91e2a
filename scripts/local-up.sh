#!/usr/bin/env bash
# The main job on one machine: installs what the local target needs (Debian/Ubuntu, as root),
# builds acura-ha, and runs `up` on examples/local.toml — three Acura nodes and an NGINX load
# balancer as network namespaces on this machine, bootstrapped with the stand-in archive.
# It shows the plan and asks before changing anything (pass --yes to skip the question).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "local-up: run as root (sudo scripts/local-up.sh): the local target makes network namespaces" >&2
  exit 1
fi
packages=(openssh-server openssh-client nginx libnginx-mod-stream dnsmasq-base nftables iproute2 etcd-server etcd-client openssl
          util-linux procps python3 python3-venv python3-pip tar)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "local-up: cargo is missing: install Rust (https://rustup.rs), then run this again" >&2
  exit 1
fi
# The local target needs no cloud SDK: without the default `aws` and `openstack` features the
# build skips the AWS SDK and the HTTP stack (minutes on 2 cores). The `quick` profile
# (Cargo.toml: unoptimised but for the SSH crypto) builds in about 0.4 of a release build's
# time; the local target's work is SSH and subprocesses, not CPU. Cargo shows its progress.
echo "local-up: building acura-ha for the local target (cargo build --profile quick --no-default-features)" >&2
cargo build --profile quick --no-default-features
bin=$(realpath "${CARGO_TARGET_DIR:-target}/quick/acura-ha")
echo "local-up: the tool is $bin (its hints name this path; put it on your PATH to type acura-ha)" >&2
exec "$bin" up -c examples/local.toml "$@"
