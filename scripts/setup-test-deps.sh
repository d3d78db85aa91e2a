#!/usr/bin/env bash
# Installs every component the test suite drives, on a fresh Debian or Ubuntu machine, as root:
# OpenSSH, NGINX with its stream module, etcd, dnsmasq, nftables, iproute2 and sudo (for the
# test of a login whose sudo asks for a password) from the distribution, and ansible-core plus
# moto (the AWS emulator the AWS provider's tests run against, as `moto_server`) in a Python virtual
# environment under $ACURA_HA_CACHE (kept between runs so CI does not download it every time).
# Safe to run again: the venv is only touched when a tool in it is missing or moto is not the
# pinned version.
set -euo pipefail

cache=${ACURA_HA_CACHE:-/var/cache/acura-ha}
venv=$cache/venv
apt_packages=(
  openssh-server openssh-client nginx libnginx-mod-stream
  etcd-server etcd-client dnsmasq-base dnsutils nftables iproute2 procps
  netcat-openbsd python3-venv python3-pip sudo openssl
)
moto_version=5.2.5
python_packages=("ansible-core==2.19.*" "moto[server]==$moto_version")

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
venv_ready() {
  [ -x "$venv/bin/ansible-inventory" ] && [ -x "$venv/bin/moto_server" ] &&
    [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" = "$moto_version" ]
}
if ! venv_ready; then
  echo "setup-test-deps: python venv with ${python_packages[*]} in $venv"
  mkdir -p "$cache"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${python_packages[@]}"
  venv_ready || { echo "setup-test-deps: the venv in $venv is still incomplete" >&2; exit 1; }
fi
echo "setup-test-deps: ready ($("$venv/bin/ansible-inventory" --version | sed -n 1p); moto $moto_version)"
