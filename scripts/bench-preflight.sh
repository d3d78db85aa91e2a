#!/usr/bin/env bash
# Benchmark (not a test; CI does not run it): our preflight fan-out against `ansible all -m setup`
# on the same local-target hosts, small and large, in one run. Goal: ours at least 10 times
# faster, and the 3-node cluster checked in 0.3 s or less.
#
# For N = 3 and 29 nodes it makes a local cluster (bench3 on 10.213.80.0/24, bench30 on
# 10.213.81.0/24; 29 nodes + the NGINX host = 30 hosts), `up --only provision` (bare hosts), then
# times, wall clock including process start, best of 3:
#   ours:    acura-ha preflight -c <file>              (every host: log in, gather, judge)
#   ansible: ansible all -m setup -i <same hosts>      (the venv's ansible, forks = hosts)
# and prints hosts, ours (s), ansible (s) and the ratio; then `down --yes`. Cleans up on exit.
#
# Ansible runs with its usual connection settings (ControlPersist within a run) but starts cold
# each time, as `acura-ha preflight` does: every run has its own control-socket directory, and
# its masters are closed afterwards.
#
# Needs root (the local target makes network namespaces) and the test components
# (sudo scripts/setup-test-deps.sh). Usage: sudo scripts/bench-preflight.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "bench-preflight: run as root (sudo scripts/bench-preflight.sh): the local target makes network namespaces" >&2
  exit 1
fi

cache=${ACURA_HA_CACHE:-/var/cache/acura-ha}
export ACURA_HA_CACHE=$cache
ansible=$cache/venv/bin/ansible
if [ ! -x "$ansible" ]; then
  echo "bench-preflight: $ansible is missing: run sudo scripts/setup-test-deps.sh" >&2
  exit 1
fi

echo "bench-preflight: cargo build --release" >&2
cargo build --release --quiet
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
bin=$target_dir/release/acura-ha
[ -x "$bin" ] || { echo "bench-preflight: no $bin after the build" >&2; exit 1; }

work=$(mktemp -d /tmp/acura-bench.XXXXXX)
configs=()

close_masters() { # $1: a control-socket directory
  local s
  for s in "$1"/*; do
    [ -S "$s" ] && ssh -O exit -o ControlPath="$s" bench-control-master >/dev/null 2>&1 || true
  done
}

cleanup() {
  local rc=$? c d
  trap - EXIT INT TERM
  for d in "$work"/cp-*; do [ -d "$d" ] && close_masters "$d"; done
  for c in "${configs[@]}"; do
    "$bin" down --yes -c "$c" --state-dir "$work/state" >"$work/down.log" 2>&1 \
      || { echo "bench-preflight: down -c $c failed:" >&2; cat "$work/down.log" >&2; rc=1; }
  done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }   # end - start, seconds
min() { printf '%s\n' "$@" | sort -g | head -1; }

results=()
for nodes in 3 29; do
  hosts=$((nodes + 1))
  case $nodes in 3) name=bench3 octet=80 ;; 29) name=bench30 octet=81 ;; esac
  net=10.213.$octet
  config=$work/$name.toml
  sed -e "s/^name = \"acura-lab\"/name = \"$name\"/" \
      -e "s/^count = 3 /count = $nodes /" \
      -e "s/10\.213\.0\./$net./g" \
      -e "s/dns_name = \"acura-lab-lb\"/dns_name = \"$name-lb\"/" \
      -e "s|^archive = \"archive\"|archive = \"$repo/examples/archive\"|" \
      "$repo/examples/local.toml" >"$config"
  grep -q "^count = $nodes " "$config" || { echo "bench-preflight: cannot set nodes.count in $config" >&2; exit 1; }
  configs+=("$config")
  echo "bench-preflight: $name: up --only provision ($nodes nodes + the NGINX host on $net.0/24)" >&2
  "$bin" up --only provision --yes -c "$config" --state-dir "$work/state" >"$work/$name-up.log" 2>&1 \
    || { cat "$work/$name-up.log" >&2; exit 1; }

  cluster_dir=$work/state/$name
  inventory=$work/$name.ini
  {
    echo "[all]"
    for k in $(seq 1 "$nodes"); do echo "$name-$k ansible_host=$net.$((10 + k))"; done
    echo "$name-lb ansible_host=$net.10"
  } >"$inventory"

  ours=()
  for run in 1 2 3; do
    t0=$(now)
    if ! "$bin" preflight -c "$config" --state-dir "$work/state" >"$work/$name-preflight.log" 2>&1; then
      echo "bench-preflight: acura-ha preflight failed on $name:" >&2; cat "$work/$name-preflight.log" >&2; exit 1
    fi
    t1=$(now)
    ours+=("$(elapsed "$t0" "$t1")")
  done

  theirs=()
  for run in 1 2 3; do
    cp=$work/cp-$name-$run
    mkdir -p "$cp"
    t0=$(now)
    if ! ANSIBLE_HOST_KEY_CHECKING=True \
        ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$cluster_dir/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes" \
        ANSIBLE_SSH_CONTROL_PATH_DIR=$cp \
        ANSIBLE_HOME=$work/ansible ANSIBLE_LOCAL_TEMP=$work/ansible/tmp \
        ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=False \
        "$ansible" all -m setup -i "$inventory" --forks "$hosts" \
          --private-key "$cluster_dir/id_ed25519" -u root \
          -e ansible_ssh_user=root -e ansible_python_interpreter=/usr/bin/python3 \
          >"$work/$name-ansible.log" 2>&1; then
      echo "bench-preflight: ansible failed on $name:" >&2; tail -30 "$work/$name-ansible.log" >&2; exit 1
    fi
    t1=$(now)
    close_masters "$cp"
    theirs+=("$(elapsed "$t0" "$t1")")
  done

  o=$(min "${ours[@]}")
  a=$(min "${theirs[@]}")
  results+=("$nodes $hosts $o $a $(awk -v a="$a" -v o="$o" 'BEGIN { printf "%.6f", a / o }')")
  echo "bench-preflight: $name: ours ${ours[*]} s; ansible ${theirs[*]} s" >&2

  "$bin" down --yes -c "$config" --state-dir "$work/state" >"$work/$name-down.log" 2>&1 \
    || { cat "$work/$name-down.log" >&2; exit 1; }
  unset 'configs[-1]'
done

echo
echo "preflight fan-out: acura-ha preflight vs ansible all -m setup (wall clock incl. process start, best of 3)"
printf '%-6s %-6s %10s %12s %8s\n' nodes hosts "ours (s)" "ansible (s)" ratio
for r in "${results[@]}"; do
  read -r n h o a x <<<"$r"
  printf '%-6s %-6s %10.3f %12.3f %7.1fx\n' "$n" "$h" "$o" "$a" "$x"
done
echo "hosts = nodes + the NGINX host; goal: ours >= 10x faster, the 3-node cluster <= 0.3 s"
