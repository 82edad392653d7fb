# Shared by load.sh and capacity.sh (sourced, not run): installs wrk and redis-server when
# missing, builds the release binaries, and starts the processes of a run on free loopback
# ports. Everything started is killed, and the work directory removed, when the script exits.
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
# LOAD_PROFILE=debug (CI's smoke run) uses the debug build the tests made; figures need release.
profile=${LOAD_PROFILE:-release}
cargo build --profile "${profile/debug/dev}" -q -p click2dial-host -p click2dial-tests --bin click2dial-host --bin pbx-sim --bin bare-202 --bin floor-202

bin=${CARGO_TARGET_DIR:-target}/$profile
# HOST_BIN (env) runs another build of the host, e.g. a copy of the code before a change,
# against the same everything else.
host_bin=${HOST_BIN:-$bin/click2dial-host}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"; }
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
# does not reach: the runs measure the create-call path, not the limits.
made=$("$host_bin" new-key)
api_key=$(sed -n 's/^key  = //p' <<<"$made")
api_hash=$(sed -n 's/^hash = "\(.*\)"$/\1/p' <<<"$made")
export C2D_AUTH__KEYS="[{id=\"load\",hash=\"$api_hash\",rate_per_minute=0,scopes=[\"calls:create\",\"metrics:read\"]}]"
export C2D_LIMITS__MAX_CALLS_IN_FLIGHT=1000000
export WRK_API_KEY=$api_key

start_redis() { # sets redis_port, redis_pid
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
}

start_sim() { # $1 = time scale; sets sim (its AMI address), sim_pid
  # Logs at `warn`, like the host: its per-call `info` lines would cost the shared cores.
  # The kit's event filters, as an Asterisk with the kit applies them to the host's user.
  RUST_LOG=warn "$bin"/pbx-sim --listen 127.0.0.1:0 --secret secret --time-scale "$1" \
    --recordings-dir "$work" --eventfilters-from host/asterisk/manager.conf \
    >"$work/sim.out" 2>"$work/sim.err" &
  sim_pid=$!
  pids+=("$sim_pid")
  sim=$(listening "$work/sim.out")
}

start_host() { # $1 = a name for its logs, then a command to run the host under (valgrind, …);
  # prints "ADDR PID" once it has logged in to the PBX
  local name=$1 pid addr
  shift
  C2D_HTTP__PORT=0 C2D_AMI__ADDRESS=$sim C2D_AMI__SECRET=secret \
    C2D_REDIS__URL=redis://127.0.0.1:$redis_port C2D_RECORDINGS__DIR=$work RUST_LOG=warn \
    "$@" "$host_bin" run >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  addr=$(listening "$work/$name.out")
  # Logged in to the PBX: a 202, not a 503 (up to 30 s: under callgrind it starts slowly).
  for _ in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "http://$addr/click2dial/calls" \
      -H 'content-type: application/json' -H "authorization: Bearer $api_key" \
      -d '{"agent":"1404","callee":"0820001234","outbound_id":"27820001234"}') || true
    [ "$code" = 202 ] && break
    sleep 0.1
  done
  echo "$addr $pid"
}

run_wrk() { # $1 = address, $2 = connections, $3 = delay ms → "rps p50 p99 non2xx total wrk_ticks"
  # WRK_AGENT (env, default 1404) picks the simulator's outcome: see post.lua.
  local c0 c1 shell=$BASHPID out total rps p50 p99 bad
  c0=$(awk '{ print $16 + $17 }' "/proc/$shell/stat")
  out=$(WRK_DELAY_MS=$3 wrk -t"${WRK_THREADS:-2}" -c"$2" -d"${duration}s" --latency -s tests/load/post.lua "http://$1" 2>&1)
  c1=$(awk '{ print $16 + $17 }' "/proc/$shell/stat")
  total=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$out")
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
  p50=$(sed -n 's/^latency_ms p50=\([0-9.]*\) .*/\1/p' <<<"$out")
  p99=$(sed -n 's/^latency_ms .*p99=\([0-9.]*\)/\1/p' <<<"$out")
  bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' <<<"$out")
  echo "$rps $p50 $p99 ${bad:-0} $total $((c1 - c0))"
}
