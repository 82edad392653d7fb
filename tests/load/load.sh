#!/usr/bin/env bash
# Load benchmark of the host's create-call path (not run in CI).
#
# Starts redis-server, the PBX simulator and click2dial-host (release builds) on free
# loopback ports, and a bare axum handler answering 202 as the reference. wrk (Debian) posts
# create-call bodies with a unique contact_ref each (tests/load/post.lua), so every request
# claims idempotency in Redis and sends an Originate. Prints, for the same run: peak
# throughput of both and their ratio, p50/p99 latency at the peak and at half the host's
# peak rate, and the host's peak RSS; and the CPU time per create (utime + stime from
# /proc, which holds up on shared cores better than wall time) of every process of each
# peak run: bare-202 and wrk in the first; the host, redis-server, pbx-sim and wrk in the
# second; and the host's CPU per create over the bare handler's, the figure to watch.
#
#   bash tests/load/load.sh            # DURATION=10 CONNECTIONS=32 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10}
connections=${CONNECTIONS:-32}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
cargo build --release -q -p click2dial-host -p click2dial-tests --bin click2dial-host --bin pbx-sim --bin bare-202

bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { # $1 = log file; waits for "listening ADDR", prints ADDR
  for _ in $(seq 200); do
    addr=$(sed -n 's/^listening //p' "$1" | head -1)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.05
  done
  echo "no 'listening' line in $1" >&2; exit 1
}

# A key for the run (rate limit off for it), and a cap on calls in flight that the load
# does not reach: the benchmark measures the create-call path, not the limits.
made=$("$bin"/click2dial-host new-key)
api_key=$(sed -n 's/^key  = //p' <<<"$made")
api_hash=$(sed -n 's/^hash = "\(.*\)"$/\1/p' <<<"$made")
export C2D_AUTH__KEYS="[{id=\"load\",hash=\"$api_hash\",rate_per_minute=0}]"
export C2D_LIMITS__MAX_CALLS_IN_FLIGHT=1000000
export WRK_API_KEY=$api_key

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=($redis_pid)
# Logs at `warn`, like the host: its per-call `info` lines would cost the shared cores.
RUST_LOG=warn "$bin"/pbx-sim --listen 127.0.0.1:0 --secret secret --time-scale 0.01 \
  --recordings-dir "$work" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
pids+=($sim_pid)
sim=$(listening "$work/sim.out")
C2D_HTTP__PORT=0 C2D_AMI__ADDRESS=$sim C2D_AMI__SECRET=secret \
  C2D_REDIS__URL=redis://127.0.0.1:$redis_port C2D_RECORDINGS__DIR=$work RUST_LOG=warn \
  "$bin"/click2dial-host run >"$work/host.out" 2>"$work/host.err" &
host_pid=$!
pids+=($host_pid)
host=$(listening "$work/host.out")
"$bin"/bare-202 127.0.0.1:0 >"$work/bare.out" 2>&1 &
bare_pid=$!
pids+=($bare_pid)
bare=$(listening "$work/bare.out")
# Wait until the host has logged in to the PBX (a 202, not a 503).
for _ in $(seq 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "http://$host/click2dial/calls" \
    -H 'content-type: application/json' -H "authorization: Bearer $api_key" \
    -d '{"agent":"1486","callee":"0820001234","outbound_id":"27820001234"}') || true
  [ "$code" = 202 ] && break
  sleep 0.1
done

cpu_ticks() { # utime + stime of each pid given, in clock ticks
  for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat"; done
}
children_ticks() { # $1 = a shell's pid → CPU of its waited-for children (cutime + cstime), in ticks
  awk '{ print $16 + $17 }' "/proc/$1/stat"
}
run_wrk() { # $1 = address, $2 = connections, $3 = delay ms → "rps p50 p99 non2xx total wrk_ticks"
  local c0 c1 shell=$BASHPID
  c0=$(children_ticks "$shell")
  out=$(WRK_DELAY_MS=$3 wrk -t2 -c"$2" -d"${duration}s" --latency -s tests/load/post.lua "http://$1" 2>&1)
  c1=$(children_ticks "$shell")
  total=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$out")
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
  p50=$(sed -n 's/^latency_ms p50=\([0-9.]*\) .*/\1/p' <<<"$out")
  p99=$(sed -n 's/^latency_ms .*p99=\([0-9.]*\)/\1/p' <<<"$out")
  bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' <<<"$out")
  echo "$rps $p50 $p99 ${bad:-0} $total $((c1 - c0))"
}

bare_before=$(cpu_ticks "$bare_pid")
read -r bare_rps bare_p50 bare_p99 _ bare_total bare_wrk < <(run_wrk "$bare" "$connections" 0)
bare_after=$(cpu_ticks "$bare_pid")
before=$(cpu_ticks "$host_pid" "$redis_pid" "$sim_pid" | paste -sd' ')
read -r host_rps host_p50 host_p99 host_bad host_total host_wrk < <(run_wrk "$host" "$connections" 0)
after=$(cpu_ticks "$host_pid" "$redis_pid" "$sim_pid" | paste -sd' ')
# Half the host's peak: each connection pauses 10 ms between requests (wrk's delay() is in
# whole milliseconds), with as many connections as that rate needs.
delay=10
half_rate=$(awk -v r="$host_rps" 'BEGIN { print r / 2 }')
half_conns=$(awk -v r="$half_rate" -v d="$delay" 'BEGIN { c = int(r * (d + 1) / 1000 + 0.5); print (c < 1 ? 1 : c) }')
read -r half_rps half_p50 half_p99 half_bad _ _ < <(run_wrk "$host" "$half_conns" "$delay")
rss_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$host_pid/status")

printf '\n== click2dial-host create-call load (%s s per run, wrk -t2) ==\n' "$duration"
printf 'bare axum 202 : %10.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (%d connections)\n' "$bare_rps" "$bare_p50" "$bare_p99" "$connections"
printf 'host, peak    : %10.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (%d connections, %s non-2xx)\n' "$host_rps" "$host_p50" "$host_p99" "$connections" "$host_bad"
printf 'host, ~half   : %10.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (target %.0f req/s, %d connections, %s non-2xx)\n' "$half_rps" "$half_p50" "$half_p99" "$half_rate" "$half_conns" "$half_bad"
awk -v h="$host_rps" -v b="$bare_rps" 'BEGIN { printf "throughput ratio host/bare: %.2fx\n", h / b }'
printf 'host peak RSS: %.1f MiB\n' "$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')"
awk -v b="$before" -v a="$after" -v n="$host_total" -v hz="$(getconf CLK_TCK)" -v hw="$host_wrk" \
  -v bb="$bare_before" -v ba="$bare_after" -v bn="$bare_total" -v bw="$bare_wrk" 'BEGIN {
  split(b, x, " "); split(a, y, " "); split("host redis-server pbx-sim", name, " ")
  us = 1e6 / hz
  bare = (ba - bb) * us / bn
  printf "CPU per create at the peak, us (utime+stime; %d Hz ticks):\n", hz
  printf "  bare run: bare-202 %.1f  wrk %.1f\n", bare, bw * us / bn
  printf "  host run:"
  for (i = 1; i <= 3; i++) { v[i] = (y[i] - x[i]) * us / n; printf "  %s %.1f", name[i], v[i] }
  printf "  wrk %.1f\n", hw * us / n
  printf "host / bare-202 CPU per create: %.1fx\n", v[1] / bare }'
