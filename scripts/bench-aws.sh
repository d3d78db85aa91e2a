#!/usr/bin/env bash
# Benchmark of the AWS provider (issue 12): `up --only provision` and `down` of examples/aws.toml
# (3 nodes, an NLB) against moto through the fault proxy, with a fixed latency added to every
# call. Prints, for each command: wall time, requests, mutating calls, their ratio, and the wall
# time in units of one call ("sequential calls"), to set against the critical path: the longest
# chain of calls that depend on each other (named in the README).
#
#   scripts/bench-aws.sh [DELAY_MS ...]     (default: 0 300)
#
# Needs the tools venv of scripts/setup-test-deps.sh (moto) and builds acura-ha (debug).
# Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
delays=("$@")
[ ${#delays[@]} -gt 0 ] || delays=(0 300)
cache=${ACURA_HA_CACHE:-/var/cache/acura-ha}
moto_server=$cache/venv/bin/moto_server
if [ ! -x "$moto_server" ]; then
  echo "bench-aws: $moto_server is missing: run sudo scripts/setup-test-deps.sh" >&2
  exit 1
fi
cargo build --quiet --bin acura-ha
bin=${CARGO_TARGET_DIR:-target}/debug/acura-ha
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # BENCH_KEEP=DIR keeps each run's timeline (--timings) and log there.
  if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP"; cp -r "$work"/*.log "$work"/state/*/logs "$BENCH_KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
moto_port=$(free_port)
MOTO_AMIS_PATH=$PWD/providers/aws/tests/fixtures/amis.json MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=1 \
  MOTO_ENABLE_AMI_VALIDATION=1 MOTO_ENABLE_KEYPAIR_VALIDATION=1 \
  "$moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$moto_port/moto-api/data.json" >/dev/null 2>&1 && break
  sleep 0.1
done
exec 3< <(exec python3 providers/aws/tests/fault_proxy.py --upstream "http://127.0.0.1:$moto_port" --port 0)
pids+=($!)
read -r _ proxy_port <&3
proxy=http://127.0.0.1:$proxy_port

ssh-keygen -q -t ed25519 -N '' -f "$work/id" >/dev/null
export AWS_ENDPOINT_URL=$proxy AWS_ENDPOINT_URL_EC2=$proxy AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2=$proxy \
  AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=false AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN

stats() { curl -fsS "$proxy/__proxy/stats"; }
# One untimed run first: moto loads its instance-type and image catalogues on the first call of
# each (seconds), which AWS does not make anyone wait for.
sed -e 's/name = "acura-aws"/name = "bench-aws-warm"/' -e 's/region = "eu-central-1"/region = "us-east-1"/' \
    -e "s#public_key_file = \"~/.ssh/id_ed25519.pub\"#public_key_file = \"$work/id.pub\"#" \
    examples/aws.toml >"$work/warm.toml"
"$bin" up --only provision --yes -c "$work/warm.toml" --state-dir "$work/state" >"$work/warm.log" 2>&1
"$bin" down --yes -c "$work/warm.toml" --state-dir "$work/state" >>"$work/warm.log" 2>&1
printf '%-8s %-6s %8s %9s %9s %6s %12s\n' delay cmd wall requests mutating ratio 'seq. calls'
for d in "${delays[@]}"; do
  name=bench-aws-$d
  sed -e "s/name = \"acura-aws\"/name = \"$name\"/" -e 's/region = "eu-central-1"/region = "us-east-1"/' \
      -e "s#public_key_file = \"~/.ssh/id_ed25519.pub\"#public_key_file = \"$work/id.pub\"#" \
      examples/aws.toml >"$work/$name.toml"
  curl -fsS -X POST -d "[{\"action\": \"*\", \"delay_ms\": $d}]" "$proxy/__proxy/rules" >/dev/null
  for cmd in up down; do
    args=(up --only provision --yes)
    [ "$cmd" = down ] && args=(down --yes)
    curl -fsS -X POST "$proxy/__proxy/reset-stats" >/dev/null
    t0=$(date +%s.%N)
    "$bin" "${args[@]}" --timings -c "$work/$name.toml" --state-dir "$work/state" >"$work/$name-$cmd.log" 2>&1 \
      || { echo "bench-aws: $cmd failed, see its log:" >&2; tail -20 "$work/$name-$cmd.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP"; stats >"$BENCH_KEEP/$name-$cmd.stats.json"; fi
    stats | python3 -c '
import json, sys
s = json.load(sys.stdin)
d, cmd, t = float(sys.argv[1]), sys.argv[2], float(sys.argv[4]) - float(sys.argv[3])
req, mut = s["total"], s["mutating"]
per = (d / 1000.0) if d else None
seq = "%.1f" % (t / per) if per else "-"
print("%-8s %-6s %7.2fs %9d %9d %6.2f %12s" % ("%d ms" % d, cmd, t, req, mut, req / max(mut, 1), seq))
'  "$d" "$cmd" "$t0" "$t1"
  done
done
