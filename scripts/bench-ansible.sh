#!/usr/bin/env bash
# Benchmark (not a test; CI does not run it): Ansible with plain defaults against Ansible with
# the settings acura-ha runs the archive's playbooks with (issue 12 item 4), on the local target's
# lab hosts, at 0 ms and at ~30 ms per round trip. Goal: ours <= 0.5x the defaults' time at 30 ms.
#
# It makes a local cluster (benchans, 3 nodes on 10.213.82.0/24), `up --only provision` (bare
# hosts) and `preflight` (pins their host keys), then puts a delaying TCP relay
# (scripts/delay-relay.py) in front of each node's sshd: 127.0.0.1:<port> -> 10.213.82.1k:22,
# holding every chunk DELAY/2 ms each way (this kernel has no netem). Through the relays it runs,
# like `up`'s Steps 5 and 6, two synthetic playbooks of 15 small tasks each (command, copy, stat;
# 30 in all), each gathering facts, and times the pair (wall clock incl. process start):
#   defaults: ansible-playbook as installed (forks 5, no pipelining, ControlPersist=60s, facts
#             gathered by every playbook);
#   ours:     the environment src/bootstrap/ansible.rs builds (ansible_env; its settings are
#             checked by tests/ansible_runner.rs): pipelining, forks = hosts (>= 5),
#             ControlPersist=120s shared by both playbooks, smart gathering + jsonfile cache,
#             and Mitogen's mitogen_linear strategy when ansible-playbook's Python can import
#             ansible_mitogen (as acura-ha decides it; ACURA_HA_ANSIBLE_STRATEGY=linear turns
#             it off, as for acura-ha). The table names the strategy ours ran with.
# Both modes run the same ansible-playbook (the tools venv's). Each run starts cold (its own control-socket and fact-cache directories; masters closed after).
# It prints seconds per task and SSH round trips per task and host (turns of the traffic from
# client->server to server->client, counted at the relay) and TCP connections, for both.
#
# Needs root (the local target makes network namespaces) and the test components
# (sudo scripts/setup-test-deps.sh). Usage: sudo scripts/bench-ansible.sh [DELAYS_MS...]
# (default: 0 30). ACURA_HA_BIN: the acura-ha binary to provision with [default: cargo build].
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "bench-ansible: run as root (sudo scripts/bench-ansible.sh): the local target makes network namespaces" >&2
  exit 1
fi
delays=("$@")
[ ${#delays[@]} -gt 0 ] || delays=(0 30)

cache=${ACURA_HA_CACHE:-/var/cache/acura-ha}
export ACURA_HA_CACHE=$cache
playbook=$cache/venv/bin/ansible-playbook
if [ ! -x "$playbook" ]; then
  echo "bench-ansible: $playbook is missing: run sudo scripts/setup-test-deps.sh" >&2
  exit 1
fi

if [ -n "${ACURA_HA_BIN:-}" ]; then
  bin=$ACURA_HA_BIN
else
  # Only the lab is made with the tool: a debug build does.
  echo "bench-ansible: cargo build -p acura-ha" >&2
  cargo build -p acura-ha --quiet
  target_dir=${CARGO_TARGET_DIR:-target}
  case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
  bin=$target_dir/debug/acura-ha
fi
[ -x "$bin" ] || { echo "bench-ansible: no $bin" >&2; exit 1; }

# Ours' strategy, as src/bootstrap/ansible.rs picks it: ask ansible-playbook's own Python.
strategy=linear strategy_env=()
case ${ACURA_HA_ANSIBLE_STRATEGY:-auto} in
  linear) ;;
  auto|mitogen)
    python=$(sed -n '1s/^#![[:space:]]*//p' "$playbook" | awk '{ print ($1 ~ /\/env$/) ? $2 : $1 }')
    mitogen=$("$python" -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))' 2>/dev/null || true)
    if [ -n "$mitogen" ] && [ -f "$mitogen/plugins/strategy/mitogen_linear.py" ]; then
      strategy=mitogen_linear
      strategy_env=(ANSIBLE_STRATEGY_PLUGINS="$mitogen/plugins/strategy" ANSIBLE_STRATEGY=mitogen_linear)
    elif [ "${ACURA_HA_ANSIBLE_STRATEGY:-}" = mitogen ]; then
      echo "bench-ansible: ACURA_HA_ANSIBLE_STRATEGY=mitogen, but $python cannot import ansible_mitogen" >&2
      exit 1
    fi ;;
  *) echo "bench-ansible: ACURA_HA_ANSIBLE_STRATEGY must be linear, mitogen or auto" >&2; exit 1 ;;
esac
echo "bench-ansible: ours runs with the $strategy strategy" >&2

work=$(mktemp -d /tmp/acura-bench-ansible.XXXXXX)
name=benchans
nodes=3
net=10.213.82
base_port=42280
config=$work/$name.toml
relay_pid=

close_masters() { # $1: a control-socket directory
  local s
  for s in "$1"/*; do
    [ -S "$s" ] && ssh -O exit -o ControlPath="$s" bench-control-master >/dev/null 2>&1 || true
  done
}

stop_relay() {
  if [ -n "$relay_pid" ]; then
    kill -TERM "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
    relay_pid=
  fi
}

provisioned=
cleanup() {
  local rc=$? d
  trap - EXIT INT TERM
  for d in "$work"/cp-*; do [ -d "$d" ] && close_masters "$d"; done
  stop_relay
  if [ -n "$provisioned" ]; then
    "$bin" down --yes -c "$config" --state-dir "$work/state" >"$work/down.log" 2>&1 \
      || { echo "bench-ansible: down failed:" >&2; cat "$work/down.log" >&2; rc=1; }
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sed -e "s/^name = \"acura-lab\"/name = \"$name\"/" \
    -e "s/^count = 3 /count = $nodes /" \
    -e "s/10\.213\.0\./$net./g" \
    -e "s/dns_name = \"acura-lab-lb\"/dns_name = \"$name-lb\"/" \
    -e "s|^archive = \"archive\"|archive = \"$repo/examples/archive\"|" \
    "$repo/examples/local.toml" >"$config"
echo "bench-ansible: $name: up --only provision ($nodes nodes on $net.0/24), preflight" >&2
provisioned=1
"$bin" up --only provision --yes -c "$config" --state-dir "$work/state" >"$work/up.log" 2>&1 \
  || { cat "$work/up.log" >&2; exit 1; }
"$bin" preflight -c "$config" --state-dir "$work/state" >"$work/preflight.log" 2>&1 \
  || { cat "$work/preflight.log" >&2; exit 1; }
cluster_dir=$work/state/$name

# The inventory: each node through its relay; its pinned key checked under its real address.
inventory=$work/hosts.ini
relays=()
{
  echo "[all]"
  for k in $(seq 1 "$nodes"); do
    ip=$net.$((10 + k)) port=$((base_port + k))
    relays+=("$port:$ip:22")
    echo "$name-$k ansible_host=127.0.0.1 ansible_port=$port ansible_user=root" \
      "ansible_ssh_private_key_file=$cluster_dir/id_ed25519 ansible_python_interpreter=/usr/bin/python3" \
      "ansible_ssh_extra_args='-o HostKeyAlias=$ip -o UserKnownHostsFile=$cluster_dir/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes'"
  done
} >"$inventory"

# Two playbooks, as Steps 5 and 6: each gathers facts, then 5 x (command, copy, stat).
tasks_per_playbook=15
for p in 1 2; do
  {
    echo "- hosts: all"
    echo "  gather_facts: true"
    echo "  gather_subset: [min]"
    echo "  tasks:"
    for i in 1 2 3 4 5; do
      cat <<EOF
    - name: command $p.$i
      ansible.builtin.command: /bin/true
      changed_when: false
    - name: copy $p.$i
      ansible.builtin.copy:
        dest: "{{ ansible_env.HOME }}/.acura-bench-$p-$i"
        content: "bench $p.$i {{ inventory_hostname }}\n"
        mode: "0600"
    - name: stat $p.$i
      ansible.builtin.stat:
        path: "{{ ansible_env.HOME }}/.acura-bench-$p-$i"
EOF
    done
  } >"$work/play$p.yaml"
done
tasks=$((2 * tasks_per_playbook))

now() { date +%s.%N; }

run_mode() { # $1: defaults|ours, $2: delay (ms per round trip); writes "seconds connections round_trips" to $work/result
  local mode=$1 delay=$2 run=$1-$2 t0 t1
  local cp=$work/cp-$run facts=$work/facts-$run stats=$work/relay-$run.json
  mkdir -p "$cp" && mkdir -m 700 -p "$facts"
  python3 "$repo/scripts/delay-relay.py" "$(awk -v d="$delay" 'BEGIN { print d / 2 }')" "$stats" "${relays[@]}" \
    >"$work/relay-$run.log" 2>&1 &
  relay_pid=$!
  for _ in $(seq 1 50); do grep -q ready "$work/relay-$run.log" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$work/relay-$run.log" || { echo "bench-ansible: the relay did not start" >&2; cat "$work/relay-$run.log" >&2; exit 1; }
  local env=(ANSIBLE_HOME="$work/ansible" ANSIBLE_LOCAL_TEMP="$work/ansible/tmp" ANSIBLE_NOCOLOR=1
    ANSIBLE_RETRY_FILES_ENABLED=False ANSIBLE_SSH_CONTROL_PATH_DIR="$cp")
  if [ "$mode" = ours ]; then
    local forks=$((nodes > 5 ? nodes : 5))
    env+=(ANSIBLE_PIPELINING=True ANSIBLE_FORKS="$forks" ANSIBLE_GATHERING=smart
      ANSIBLE_CACHE_PLUGIN=jsonfile ANSIBLE_CACHE_PLUGIN_CONNECTION="$facts" ANSIBLE_CACHE_PLUGIN_TIMEOUT=0
      ANSIBLE_HOST_KEY_CHECKING=True
      ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=120s -o StrictHostKeyChecking=yes -o BatchMode=yes"
      "${strategy_env[@]}")
  fi
  t0=$(now)
  for p in 1 2; do
    if ! env "${env[@]}" "$playbook" -i "$inventory" "$work/play$p.yaml" >"$work/$run-play$p.log" 2>&1; then
      echo "bench-ansible: $run: playbook $p failed:" >&2; tail -30 "$work/$run-play$p.log" >&2; exit 1
    fi
  done
  t1=$(now)
  close_masters "$cp"
  stop_relay
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["connections"], s["round_trips"])' "$stats" \
    | awk -v a="$t0" -v b="$t1" '{ printf "%.3f %d %d\n", b - a, $1, $2 }' >"$work/result"
}

results=()
for delay in "${delays[@]}"; do
  for mode in defaults ours; do
    echo "bench-ansible: $mode at $delay ms per round trip" >&2
    run_mode "$mode" "$delay"
    read -r secs conns rts <"$work/result"
    results+=("$delay $mode $secs $conns $rts")
    echo "bench-ansible: $mode at $delay ms: $secs s, $conns connections, $rts round trips" >&2
  done
done

echo
echo "Ansible: $tasks small tasks (command, copy, stat) in 2 playbooks on $nodes lab hosts, through a delaying relay"
echo "ours: acura-ha's settings with the $strategy strategy; $("$playbook" --version | sed -n 1p)"
printf '%-9s %-9s %9s %11s %14s %12s %8s\n' "RTT (ms)" settings "total (s)" "s per task" "RTs/task/host" connections "vs dflt"
declare -A base
for r in "${results[@]}"; do
  read -r d m s c t <<<"$r"
  [ "$m" = defaults ] && base[$d]=$s
  printf '%-9s %-9s %9.2f %11.3f %14.1f %12d %7.2fx\n' "$d" "$m" "$s" \
    "$(awk -v s="$s" -v n="$tasks" 'BEGIN { print s / n }')" \
    "$(awk -v t="$t" -v n="$tasks" -v h="$nodes" 'BEGIN { print t / n / h }')" "$c" \
    "$(awk -v s="$s" -v b="${base[$d]}" 'BEGIN { print s / b }')"
done
echo "RTs = SSH round trips (client->server then server->client turns at the relay), incl. fact gathering; goal: ours <= 0.5x the defaults at 30 ms"
