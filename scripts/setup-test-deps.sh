#!/usr/bin/env bash
# Installs every component the test suite drives, on a fresh Debian or Ubuntu machine, as root:
# OpenSSH, NGINX with its stream module, etcd, dnsmasq, nftables, iproute2 and sudo (for the
# test of a login whose sudo asks for a password) from the distribution, and ansible-core, Mitogen
# (the strategy acura-ha runs the playbooks with when it is there) plus moto (the AWS emulator the
# AWS provider's tests run against, as `moto_server`) in a Python virtual environment under
# $ACURA_HA_CACHE (kept between runs so CI does not download it every time).
# Safe to run again: the venv is only touched when a tool in it is missing or moto or Mitogen is
# not the pinned version.
set -euo pipefail

cache=${ACURA_HA_CACHE:-/var/cache/acura-ha}
venv=$cache/venv
apt_packages=(
  openssh-server openssh-client nginx libnginx-mod-stream
  etcd-server etcd-client dnsmasq-base dnsutils nftables iproute2 procps
  netcat-openbsd python3-venv python3-pip sudo openssl
)
moto_version=5.2.5
# The version acura-ha installs beside the archive's requirements (MITOGEN_PIP in
# src/bootstrap/ansible.rs; tests/ansible_runner.rs checks they agree).
mitogen_version=0.3.54
python_packages=("ansible-core==2.19.*" "mitogen==$mitogen_version" "moto[server]==$moto_version")

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-test-deps: run as root (it installs packages with apt-get)" >&2
  exit 1
fi

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-test-deps: apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The machine's own python3 (Debian's), not a pyenv shim: the venv must outlive shell settings.
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
version_of() { "$venv/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null; }
venv_ready() {
  [ -x "$venv/bin/ansible-inventory" ] && [ -x "$venv/bin/moto_server" ] &&
    [ "$(version_of moto)" = "$moto_version" ] && [ "$(version_of mitogen)" = "$mitogen_version" ]
}
if ! venv_ready; then
  echo "setup-test-deps: python venv with ${python_packages[*]} in $venv"
  mkdir -p "$cache"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${python_packages[@]}"
  venv_ready || { echo "setup-test-deps: the venv in $venv is still incomplete" >&2; exit 1; }
fi
echo "setup-test-deps: ready ($("$venv/bin/ansible-inventory" --version | sed -n 1p); mitogen $mitogen_version; moto $moto_version)"
