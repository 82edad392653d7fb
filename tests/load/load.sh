#!/usr/bin/env bash
# Load benchmark of the host's create-call path (CI runs it 1 s on the debug build, a smoke
# test: the figures need release builds and a quiet machine).
#
# Starts redis-server, the PBX simulator and click2dial-host (release builds) on free
# loopback ports, a bare axum handler answering 202 as the reference, and floor-202, which
# makes only a create's exchanges (its HTTP, one Redis SET NX, one Originate) as a lower
# bound of the host's cost. wrk (Debian) posts create-call bodies with a unique contact_ref
# each (tests/load/post.lua), so every request claims idempotency in Redis and sends an
# Originate. Prints, for the same run: peak throughput of the host and the bare handler and
# their ratio, p50/p99 latency at the peak and at half the host's peak rate, and the host's
# peak RSS; the CPU time per create (utime + stime from /proc, which holds up on shared
# cores better than wall time) of every process of each peak run: bare-202 and wrk in the
# first; the host, redis-server, pbx-sim and wrk in the second; the host's CPU per create
# over the bare handler's, the figure to watch; and floor-202's, paced at the host's peak
# rate. Each peak run's CPU is also split into user and system time: a loopback exchange
# costs system time in the process that sends. Last, the host's, the bare handler's and the
# floor's CPU per request at about half the host's peak, paced alike (none saturated: at
# its own peak the bare handler answers many requests per wake-up).
#
#   bash tests/load/load.sh            # DURATION=10 CONNECTIONS=32 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10}
connections=${CONNECTIONS:-32}
source tests/load/common.sh
start_redis
start_sim 0.01
read -r host host_pid < <(start_host host)
pids+=("$host_pid")
"$bin"/bare-202 127.0.0.1:0 >"$work/bare.out" 2>&1 &
bare_pid=$!
pids+=("$bare_pid")
bare=$(listening "$work/bare.out")
# The floor: only the exchanges a create cannot go without (its HTTP, one Redis round trip,
# one Originate to the simulator), on the same Redis and simulator (src/bin/floor-202.rs).
"$bin"/floor-202 127.0.0.1:0 "redis://127.0.0.1:$redis_port" "$sim" secret >"$work/floor.out" 2>&1 &
floor_pid=$!
pids+=("$floor_pid")
floor=$(listening "$work/floor.out")

cpu_ticks() { # "utime stime" of each pid given, in clock ticks, on one line
  for p in "$@"; do awk '{ print $14, $15 }' "/proc/$p/stat"; done | paste -sd' '
}

bare_before=$(cpu_ticks "$bare_pid")
read -r bare_rps bare_p50 bare_p99 _ bare_total bare_wrk < <(run_wrk "$bare" "$connections" 0)
bare_after=$(cpu_ticks "$bare_pid")
before=$(cpu_ticks "$host_pid" "$redis_pid" "$sim_pid")
read -r host_rps host_p50 host_p99 host_bad host_total host_wrk < <(run_wrk "$host" "$connections" 0)
after=$(cpu_ticks "$host_pid" "$redis_pid" "$sim_pid")
# Paced runs: each connection pauses 10 ms between requests (wrk's delay() is in whole
# milliseconds), with as many connections as a rate needs.
delay=10
connections_for() { # $1 = requests per second
  awk -v r="$1" -v d="$delay" 'BEGIN { c = int(r * (d + 1) / 1000 + 0.5); print (c < 1 ? 1 : c) }'
}
# The floor at the host's peak rate: at its own peak it answers several times the host's
# rate, many requests per wake-up.
floor_before=$(cpu_ticks "$floor_pid")
read -r floor_rps _ _ floor_bad floor_total _ < <(run_wrk "$floor" "$(connections_for "$host_rps")" "$delay")
floor_after=$(cpu_ticks "$floor_pid")
# Half the host's peak.
half_rate=$(awk -v r="$host_rps" 'BEGIN { print r / 2 }')
half_conns=$(connections_for "$half_rate")
half_before=$(cpu_ticks "$host_pid")
read -r half_rps half_p50 half_p99 half_bad half_total _ < <(run_wrk "$host" "$half_conns" "$delay")
half_after=$(cpu_ticks "$host_pid")
# The bare handler at the same pacing: at its own peak it is saturated and answers many
# requests per wake-up, which the host at half its rate is not.
bare_half_before=$(cpu_ticks "$bare_pid")
read -r bare_half_rps _ _ _ bare_half_total _ < <(run_wrk "$bare" "$half_conns" "$delay")
bare_half_after=$(cpu_ticks "$bare_pid")
floor_half_before=$(cpu_ticks "$floor_pid")
read -r floor_half_rps _ _ _ floor_half_total _ < <(run_wrk "$floor" "$half_conns" "$delay")
floor_half_after=$(cpu_ticks "$floor_pid")
rss_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$host_pid/status")

printf '\n== click2dial-host create-call load (%s s per run, wrk -t2) ==\n' "$duration"
printf 'bare axum 202 : %10.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (%d connections)\n' "$bare_rps" "$bare_p50" "$bare_p99" "$connections"
printf 'host, peak    : %10.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (%d connections, %s non-2xx)\n' "$host_rps" "$host_p50" "$host_p99" "$connections" "$host_bad"
printf 'host, ~half   : %10.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (target %.0f req/s, %d connections, %s non-2xx)\n' "$half_rps" "$half_p50" "$half_p99" "$half_rate" "$half_conns" "$half_bad"
awk -v h="$host_rps" -v b="$bare_rps" 'BEGIN { printf "throughput ratio host/bare: %.2fx\n", h / b }'
printf 'host peak RSS: %.1f MiB\n' "$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')"
awk -v b="$before" -v a="$after" -v n="$host_total" -v hz="$(getconf CLK_TCK)" -v hw="$host_wrk" \
  -v bb="$bare_before" -v ba="$bare_after" -v bn="$bare_total" -v bw="$bare_wrk" \
  -v fbs="$floor_before" -v fas="$floor_after" -v fn="$floor_total" -v fr="$floor_rps" -v fbad="$floor_bad" 'BEGIN {
  split(b, x, " "); split(a, y, " "); split(bb, p, " "); split(ba, q, " "); split(fbs, fb, " "); split(fas, fa, " ")
  split("host redis-server pbx-sim", name, " ")
  us = 1e6 / hz
  for (i = 1; i <= 3; i++) {
    user[i] = (y[2*i-1] - x[2*i-1]) * us / n; sys[i] = (y[2*i] - x[2*i]) * us / n
  }
  bare_user = (q[1] - p[1]) * us / bn; bare_sys = (q[2] - p[2]) * us / bn
  bare = bare_user + bare_sys
  printf "CPU per create at the peak, us (utime+stime; %d Hz ticks):\n", hz
  printf "  bare run: bare-202 %.1f  wrk %.1f\n", bare, bw * us / bn
  printf "  host run:"
  for (i = 1; i <= 3; i++) printf "  %s %.1f", name[i], user[i] + sys[i]
  printf "  wrk %.1f\n", hw * us / n
  printf "host / bare-202 CPU per create: %.1fx\n", (user[1] + sys[1]) / bare
  floor_user = (fa[1] - fb[1]) * us / fn; floor_sys = (fa[2] - fb[2]) * us / fn
  floor = floor_user + floor_sys
  printf "floor-202 CPU per create at the host'"'"'s peak rate: %.1f (user / system %.1f / %.1f; %.0f req/s, %d non-2xx): %.1fx bare-202; host / floor-202 %.1fx\n", floor, floor_user, floor_sys, fr, fbad, floor / bare, (user[1] + sys[1]) / floor
  printf "the same, user / system:\n  bare run: bare-202 %.1f / %.1f\n  host run:", bare_user, bare_sys
  for (i = 1; i <= 3; i++) printf "  %s %.1f / %.1f", name[i], user[i], sys[i]
  printf "\n" }'
awk -v hb="$half_before" -v ha="$half_after" -v hn="$half_total" -v hr="$half_rps" \
  -v bb="$bare_half_before" -v ba="$bare_half_after" -v bn="$bare_half_total" -v br="$bare_half_rps" \
  -v fb="$floor_half_before" -v fa="$floor_half_after" -v fn="$floor_half_total" -v fr="$floor_half_rps" \
  -v hz="$(getconf CLK_TCK)" 'BEGIN {
  split(hb, x, " "); split(ha, y, " "); split(bb, p, " "); split(ba, q, " "); split(fb, f, " "); split(fa, g, " ")
  us = 1e6 / hz
  host = (y[1] + y[2] - x[1] - x[2]) * us / hn; bare = (q[1] + q[2] - p[1] - p[2]) * us / bn
  floor = (g[1] + g[2] - f[1] - f[2]) * us / fn
  printf "CPU per request at ~half the host'"'"'s peak, the same pacing for all:\n"
  printf "  host %.1f us (%.0f req/s)  bare-202 %.1f us (%.0f req/s)  host / bare-202 %.1fx\n", host, hr, bare, br, host / bare
  printf "  floor-202 %.1f us (%.0f req/s): %.1fx bare-202; host / floor-202 %.1fx\n", floor, fr, floor / bare, host / floor }'
