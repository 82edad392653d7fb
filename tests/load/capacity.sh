#!/usr/bin/env bash
# Capacity of one deployment on this machine, with one host and then two hosts sharing one
# Redis and one PBX (the figures of README "Capacity"; CI runs it short, as a smoke test).
#
# Starts redis-server, the PBX simulator (time scale 0.01) and click2dial-host (release
# builds) on free loopback ports. Every create is a whole answered call (agent 1001: the
# simulator replays the real Asterisk 22 transcript a_success, 94 AMI events), so each one
# claims its idempotency record, sends an Originate and pushes six notifications. For each
# setup it prints:
#   peak      creates/s with wrk at full speed (connections split over the hosts), and
#             what each create cost: Redis commands (INFO commandstats, without the
#             script's own INFO/CONFIG calls), Redis memory kept until the TTLs end
#             (used_memory), and the AMI bytes the PBX sent (TCP bytes the simulator sent) per host;
#   at RATE   notification latency (the host's histogram click2dial_notification_latency_seconds:
#             AMI event read → its LPUSH done) at a fixed rate of creates.
#
# (AMI bytes show as -1 when the simulator closed a session during the run: it drops a
# manager session that does not read its events in time, as Asterisk does.)
#
#   bash tests/load/capacity.sh          # DURATION=10 RATE=100 CONNECTIONS=32 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10}
rate=${RATE:-100}
connections=${CONNECTIONS:-32}
export WRK_AGENT=1001
source tests/load/common.sh
start_redis
start_sim 0.01

rcli() { redis-cli -p "$redis_port" "$@"; }
redis_commands() { # commands Redis ran since the last CONFIG RESETSTAT, this script's own left out
  rcli INFO commandstats | tr -d '\r' |
    awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /^cmdstat_(info|config)$/ { n += $3 } END { print n + 0 }'
}
redis_top() { # the commands behind redis_commands, most first: "name count ..."
  rcli INFO commandstats | tr -d '\r' |
    awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /^cmdstat_(info|config)$/ { sub("cmdstat_", "", $1); print $3, $1 }' |
    sort -rn | head -8 | awk '{ printf "%s %s  ", $2, $1 }'
}
used_memory() { rcli INFO memory | tr -d '\r' | sed -n 's/^used_memory://p'; }
ami_sent() { # bytes the simulator's AMI sessions have sent (TCP bytes_acked of its connections)
  # (awk, not grep: no session open at that moment is 0, not a failure)
  ss -tinH state established "( sport = :${sim##*:} )" |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^bytes_acked:/) { split($i, f, ":"); n += f[2] } } END { print n + 0 }'
}
metric() { # $1 = host address, $2 = metric line prefix → its value (0 when absent)
  curl -s -H "authorization: Bearer $api_key" "http://$1/metrics" | awk -v m="$2" 'index($0, m) == 1 { v = $NF } END { print v + 0 }'
}
latency_histogram() { # the hosts' latency histograms summed: "le count" lines, then "sum S", "count N"
  for h in "$@"; do curl -s -H "authorization: Bearer $api_key" "http://$h/metrics"; done |
    awk '/^click2dial_notification_latency_seconds_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); b[le] += $NF; order[le] = 1 }
         /^click2dial_notification_latency_seconds_sum/ { s += $NF }
         /^click2dial_notification_latency_seconds_count/ { c += $NF }
         END { for (le in b) print le, b[le]; print "sum", s; print "count", c }'
}
latency_between() { # $1, $2 = histogram files → "p50 p99 mean" in ms (p50/p99: bucket upper bounds)
  awk 'NR == FNR { a[$1] = $2; next } { d[$1] = $2 - a[$1] }
       END {
         n = d["count"]; if (n <= 0) { print "- - -"; exit }
         m = 0; for (le in d) if (le != "sum" && le != "count") { k[++m] = (le == "+Inf" ? 1e9 : le + 0); v[k[m]] = d[le] }
         for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (k[j] < k[i]) { t = k[i]; k[i] = k[j]; k[j] = t }
         p50 = p99 = "-"
         for (i = 1; i <= m; i++) { if (p50 == "-" && v[k[i]] >= 0.5 * n) p50 = k[i]; if (p99 == "-" && v[k[i]] >= 0.99 * n) p99 = k[i] }
         printf "%s %s %.2f\n", (p50 == "-" || p50 == 1e9 ? ">max" : p50 * 1000), (p99 == "-" || p99 == 1e9 ? ">max" : p99 * 1000), 1000 * d["sum"] / n
       }' "$1" "$2"
}
drained() { # waits until every host has no call in flight and an empty spool (60 s at most)
  for _ in $(seq 600); do
    local busy=0
    for h in "$@"; do
      [ "$(metric "$h" click2dial_calls_in_flight)" = 0 ] || busy=1
      [ "$(metric "$h" click2dial_notification_spool_depth)" = 0 ] || busy=1
    done
    [ $busy = 0 ] && return
    sleep 0.1
  done
  echo "calls still in flight after 60 s" >&2
  exit 1
}
wrk_all() { # $1 = connections per host, $2 = delay ms, then host addresses → "creates non2xx"
  local conns=$1 delay=$2 i=0
  shift 2
  for h in "$@"; do
    WRK_PREFIX="cap$RANDOM-$i" WRK_THREADS=1 run_wrk "$h" "$conns" "$delay" >"$work/wrk.$i" &
    i=$((i + 1))
  done
  wait
  cat "$work"/wrk.* | awk '{ ok += $5 - $4; bad += $4 } END { print ok, bad }'
  rm -f "$work"/wrk.*
}

cpu_ticks() { # utime + stime of each pid given, in clock ticks, on one line
  for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat"; done | paste -sd' '
}

cpu_per_create() { # $1, $2 = cpu_ticks before/after, $3 = creates, $4 = hosts → "host N ... redis-server N pbx-sim N"
  awk -v a="$1" -v b="$2" -v c="$3" -v n="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n + 2; i++) {
      name = (i <= n ? "host" : (i == n + 1 ? "redis-server" : "pbx-sim"))
      printf "%s %.0f  ", name, (y[i] - x[i]) * 1e6 / hz / c
    }
  }'
}

measure() { # $1 = label, then host addresses (their pids in host_pids, in the same order)
  local label=$1
  shift
  local n=$# creates bad commands memory ami
  drained "$@"
  rcli CONFIG RESETSTAT >/dev/null
  local mem0 ami0
  mem0=$(used_memory)
  ami0=$(ami_sent)
  cpu0=$(cpu_ticks "${host_pids[@]:0:n}" "$redis_pid" "$sim_pid")
  read -r creates bad < <(wrk_all $((connections / n)) 0 "$@")
  drained "$@"
  commands=$(redis_commands)
  top=$(redis_top)
  memory=$(($(used_memory) - mem0))
  ami=$(($(ami_sent) - ami0))
  cpu1=$(cpu_ticks "${host_pids[@]:0:n}" "$redis_pid" "$sim_pid")
  [ "$creates" -gt 0 ] || { echo "$label: no create was accepted" >&2; exit 1; }
  printf '%-8s peak: %6.0f creates/s (%s non-2xx)  per create: %5.1f Redis commands, %5.0f B Redis memory, %6.0f AMI bytes per host\n' \
    "$label" "$(awk -v c="$creates" -v d="$duration" 'BEGIN { print c / d }')" "$bad" \
    "$(awk -v a="$commands" -v c="$creates" 'BEGIN { print a / c }')" \
    "$(awk -v a="$memory" -v c="$creates" 'BEGIN { print a / c }')" \
    "$(awk -v a="$ami" -v c="$creates" -v n="$n" 'BEGIN { print (a < 0 ? -1 : a / c / n) }')"
  printf '%-8s Redis commands, all creates: %s\n' "$label" "$top"
  printf '%-8s connections to Redis (CLIENT LIST, without this script): %s\n' "$label" \
    "$(rcli CLIENT LIST | grep -vc 'cmd=client')"
  printf '%-8s CPU per create at the peak, us: %s\n' "$label" "$(cpu_per_create "$cpu0" "$cpu1" "$creates" "$n")"
  # Creates alone: agent 1404 is refused at once by the simulator (one OriginateResponse,
  # one `failed` notification), so the PBX's replay no longer bounds the rate.
  cpu0=$(cpu_ticks "${host_pids[@]:0:n}" "$redis_pid" "$sim_pid")
  read -r creates bad < <(WRK_AGENT=1404 wrk_all $((connections / n)) 0 "$@")
  drained "$@"
  cpu1=$(cpu_ticks "${host_pids[@]:0:n}" "$redis_pid" "$sim_pid")
  printf '%-8s creates only (agent 1404): %6.0f creates/s (%s non-2xx); CPU per create, us: %s\n' "$label" \
    "$(awk -v c="$creates" -v d="$duration" 'BEGIN { print c / d }')" "$bad" "$(cpu_per_create "$cpu0" "$cpu1" "$creates" "$n")"
  # A fixed rate: each connection pauses 100 ms between requests, so one makes about 7 a
  # second (a create answers in a few ms to tens of ms here), with as many connections
  # per host as its share of RATE needs.
  local per_host_conns
  per_host_conns=$(awk -v r="$rate" -v n="$n" 'BEGIN { c = int(r / n * 0.13 + 0.5); print (c < 1 ? 1 : c) }')
  latency_histogram "$@" >"$work/lat.before"
  read -r creates bad < <(wrk_all "$per_host_conns" 100 "$@")
  drained "$@"
  latency_histogram "$@" >"$work/lat.after"
  read -r p50 p99 mean < <(latency_between "$work/lat.before" "$work/lat.after")
  printf '%-8s at %4.0f creates/s: notification latency p50 <= %s ms, p99 <= %s ms, mean %s ms (%s non-2xx)\n' \
    "$label" "$(awk -v c="$creates" -v d="$duration" 'BEGIN { print c / d }')" "$p50" "$p99" "$mean" "$bad"
}

printf '\n== capacity: %s s runs, whole answered calls, one Redis, one PBX simulator ==\n' "$duration"
read -r host_a pid_a < <(start_host a)
pids+=("$pid_a")
host_pids=("$pid_a")
measure "1 host" "$host_a"
read -r host_b pid_b < <(start_host b)
pids+=("$pid_b")
host_pids+=("$pid_b")
measure "2 hosts" "$host_a" "$host_b"
