#!/usr/bin/env bash
# bench/run.sh — tools/call throughput, latency and memory of mcpgate with
# its full pipeline on (API-key auth, policy, schema validation of the
# arguments, rate and concurrency limits, the audit log) against a bare
# go-sdk server serving the same demo tool, in one run.
# With --upstream, the baseline is instead the demo upstream called directly
# ("direct"), and mcpgate fronts it as a url: (http) or stdio (stdio) upstream.
#
# Both servers run at once on loopback; for every era and concurrency the
# load generator hits one then the other (the order alternates from cell to
# cell and round to round), so machine noise lands on both alike.
#
# Memory: after a warm-up, each server's settled VmRSS ("idle"); during every
# measured window, its peak VmRSS sampled every 200ms ("under load"). The
# gateway's sandboxed stdio children are not in its own VmRSS: they are
# reported apart, as the sum over all its descendants. With --sessions N,
# each server is also made to hold N idle legacy sessions, and the growth of
# its settled RSS divided by N is the memory per idle session.
#
# CPU: each server's CPU time (utime + stime) over every measured window,
# with its descendants', divided by the calls in it: µs per call. On a shared
# host calls/s swing with what else runs; the CPU a call costs moves less,
# so the "CPU cost ratio" (baseline ÷ gateway µs per call) is the steadier
# measure of what the gateway adds. With --upstream http the gateway's
# figure includes the direct server's CPU during the gateway's runs (its
# url: upstream, not its child).
#
# Usage: bench/run.sh [-d DURATION] [-w WARMUP] [-c "1 16 64"] [-r ROUNDS]
#                     [-o RESULTS.jsonl]
#                     [--bare-vs-bare | --forwarder | --in-process | --upstream http|stdio]
#                     [--sessions N] [--session-rounds R]
#   -d   measured duration per run (default 10s)
#   -w   unmeasured warm-up per run (default 2s)
#   -c   concurrency levels (default "1 16 64")
#   -r   rounds; table values are means over rounds, ratio ranges are
#        per round (default 1; 0 skips the load, e.g. for --sessions alone)
#   -o   also keep every loadgen summary, one JSON object a line
#   --bare-vs-bare  use a second bare server in place of mcpgate (checks
#                   the harness itself; the ratio should be about 1)
#   --forwarder     use bench/forward in place of mcpgate: a bare forwarder
#                   from HTTP to the demo as a stdio child, with no checks at
#                   all, so the ratio is the ceiling of any gateway that runs
#                   its tool server in a process of its own, on this machine
#   --forwarder-args A  flags for bench/forward, e.g. "-server sdk -client
#                       sdk" to measure the go-sdk's two hops alone
#   --in-process    mcpgate serves the demo inside its own process
#                   (upstreams.demo.insecure_in_process: true) instead of as
#                   a sandboxed stdio child: the bare server and mcpgate
#                   then run the same server in one process each, so the
#                   ratio prices mcpgate's pipeline alone (issue 8's
#                   in-process demo scenario)
#   --upstream http   start "mcpgate demo --listen" once; measure it directly
#                     and through mcpgate with it as a url: upstream
#   --upstream stdio  mcpgate runs the demo as a stdio child (builtin: demo);
#                     the loadgen speaks only HTTP, so the direct baseline is
#                     the same demo server over HTTP ("mcpgate demo --listen")
#   --upstream-version V  pin the MCP revision the gateway speaks to its
#                       upstream (upstreams.demo.protocol_version: 2025-11-25
#                       or 2026-07-28; default: auto)
#   --rate R            pace each measured run to R calls/s over all workers
#                       (open loop; default 0: as fast as answered). Latency
#                       then counts from when each call was due, so the p99
#                       columns show what the gateway adds at that load, not
#                       the queueing of a saturated 2-vCPU machine; calls/s
#                       below R means the server could not keep up.
#   --sessions N        also measure memory per idle session: hold N legacy
#                       (2025-11-25) sessions open on each server (default 0: off)
#   --session-rounds R  repeat that R times, each on a freshly started pair of
#                       servers, alternating the order (default 2)
#   --session-settle D  wait before each settled reading (default 2s; over 2m
#                       spans the Go runtime's forced periodic GC)
# Env: MCPGATE_ARGS adds flags to "mcpgate serve" (e.g. "--log-level warn");
#      LOADGEN_ARGS adds flags to every loadgen run (e.g. "-tool echo -args '{}'").
#
# Exits non-zero if any call failed or a server did not start.
set -euo pipefail

duration=10s warmup=2s concurrencies="1 16 64" rounds=1 keep="" bare_vs_bare=0 forwarder=0 in_process=0 upstream=""
sessions=0 session_rounds=2 session_settle=2s upstream_version="" rate=0 forwarder_args=""
while (($#)); do
	case $1 in
	-d) duration=$2; shift 2 ;;
	-w) warmup=$2; shift 2 ;;
	-c) concurrencies=$2; shift 2 ;;
	-r) rounds=$2; shift 2 ;;
	-o) keep=$2; shift 2 ;;
	--bare-vs-bare) bare_vs_bare=1; shift ;;
	--forwarder) forwarder=1; shift ;;
	--in-process) in_process=1; shift ;;
	--forwarder-args) forwarder=1 forwarder_args=$2; shift 2 ;;
	--upstream) upstream=$2; shift 2 ;;
	--upstream-version) upstream_version=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--sessions) sessions=$2; shift 2 ;;
	--session-rounds) session_rounds=$2; shift 2 ;;
	--session-settle) session_settle=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done
[[ $rate =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "run.sh: --rate takes a number of calls a second, not $rate" >&2; exit 2; }
case $upstream in
"" | http | stdio) ;;
*) echo "run.sh: --upstream takes http or stdio, not $upstream" >&2; exit 2 ;;
esac
if ((bare_vs_bare + forwarder + in_process > 1)) || { ((bare_vs_bare + forwarder + in_process)) && [[ -n $upstream ]]; }; then
	echo "run.sh: --bare-vs-bare, --forwarder, --in-process and --upstream do not combine" >&2
	exit 2
fi
# base names the baseline server in results and tables. The targets are
# issue 8's: the full pipeline at >= 0.8x the baseline's calls/s, at most
# 1 ms added to p99 at concurrency 16, at most 20 KB per idle session.
base=bare goal=0.8 p99_goal_ms=1 session_goal_kb=20
[[ -n $upstream ]] && base=direct
command -v jq >/dev/null || { echo "run.sh: jq is required" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-bench.XXXXXX")
pids=()

# cleanup kills only the servers this script started, then removes the temp
# dir; on failure it shows the end of their logs first.
cleanup() {
	local rc=$?
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	if ((rc != 0)); then
		for log in "$tmp"/bare.log "$tmp"/gateway.log "$tmp"/direct.log "$tmp"/mcpgate.log; do
			[[ -s $log ]] && { echo "--- tail of $(basename "$log")" >&2; tail -n 20 "$log" >&2; }
		done
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build() {
	echo "building into $tmp/bin" >&2
	(cd "$root" && go build -o "$tmp/bin/" ./bench/bare ./bench/loadgen ./bench/forward)
	if ((!bare_vs_bare)) || [[ -n $upstream ]]; then
		(cd "$root" && go build -o "$tmp/bin/mcpgate" ./cmd/mcpgate)
	fi
}

# start_printing NAME VAR PREFIX CMD...: starts CMD in the background and
# waits until it prints a line "PREFIX<address>" on stdout, which it stores
# in VAR. (Not $(...): a subshell would lose the pid needed for cleanup.)
start_printing() {
	local name=$1 var=$2 prefix=$3 out="$tmp/$1.out"
	shift 3
	"$@" >"$out" 2>"$tmp/$name.log" &
	pids+=($!)
	for _ in $(seq 100); do
		local addr
		addr=$(sed -n "s|^$prefix||p" "$out")
		[[ -n $addr ]] && { printf -v "$var" '%s' "$addr"; return; }
		kill -0 "${pids[-1]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "run.sh: $name did not start" >&2
	return 1
}

# start_bare NAME VAR: starts a bare server on a free port and stores its base
# URL in VAR.
start_bare() {
	start_printing "$1" "$2" "listening on " "$tmp/bin/bare" -addr 127.0.0.1:0
}

# start_direct VAR: starts "mcpgate demo --listen" on a free port and stores
# its endpoint URL (both eras on one path) in VAR.
start_direct() {
	start_printing direct "$1" "demo MCP server on " "$tmp/bin/mcpgate" demo --listen 127.0.0.1:0
}

# free_port picks an unused loopback port; mcpgate takes its address from the
# config file and does not report a port it chose itself.
free_port() {
	local port
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo "run.sh: no free port found" >&2
	return 1
}

# new_key prints an API key in mcpgate's format: mgk_ + 43 base64url chars.
new_key() {
	printf 'mgk_%s' "$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' | cut -c1-43)"
}

# start_gateway KEY VAR [UPSTREAM_URL]: writes the config, starts mcpgate and
# stores its endpoint URL in VAR. Its one upstream is the demo: a stdio child
# (builtin: demo), served in process (--in-process), or the server at
# UPSTREAM_URL if given. The whole pipeline
# is on: API-key auth, a deny-by-default policy with one rule, the tools'
# input schemas (echo declares {message: string}; every call's arguments
# are validated against it), rate and concurrency limits, and the audit log
# (fsynced, hash-chained, signed; verified at the end of the run).
start_gateway() {
	local key=$1 port digest pin="" up
	[[ -n $upstream_version ]] && pin=", protocol_version: \"$upstream_version\""
	up="{builtin: demo, namespace: \"\"$pin}"
	((in_process)) && up="{builtin: demo, namespace: \"\", insecure_in_process: true$pin}"
	[[ -n ${3:-} ]] && up="{url: \"$3\", namespace: \"\"$pin}"
	port=$(free_port)
	digest=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
	# One key for every gateway of the run: they all append to one log
	# (keygen refuses to overwrite a key).
	[[ -e $tmp/audit.key ]] || "$tmp/bin/mcpgate" audit keygen --out "$tmp/audit" >/dev/null
	cat >"$tmp/mcpgate.yaml" <<-EOF
		listen:
		  address: 127.0.0.1:$port
		auth:
		  api_keys:
		    - {id: bench, sha256: "$digest", roles: [bench]}
		upstreams:
		  demo: $up
		policy:
		  rules:
		    - {name: bench-echo, roles: [bench], allow: {tools: [echo]}}
		# One principal drives all the load: limits stay on (their cost is
		# measured) but high enough never to refuse a call, nor to end an
		# idle session to make room for a new one (the per-principal session
		# cap, 128 by default, would otherwise end all but 128 of
		# --sessions' 1,000; they open over 16 connections, far below
		# listen.max_connections).
		limits:
		  per_principal: {rate: 1000000, burst: 1000000, concurrent: 100000}
		  concurrent_total: 100000
		  sessions: {total: 100000, per_principal: 100000}
		audit:
		  path: $tmp/audit.jsonl
		  signing_key: $tmp/audit.key
		# A port of its own: the default 9464 may be taken by another
		# gateway on this host, which would stop this one from starting.
		admin:
		  address: 127.0.0.1:0
	EOF
	# shellcheck disable=SC2086 # MCPGATE_ARGS is a list of flags
	"$tmp/bin/mcpgate" serve --config "$tmp/mcpgate.yaml" ${MCPGATE_ARGS:-} >"$tmp/mcpgate.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf -v "$2" '%s' "http://127.0.0.1:$port/mcp"
			return
		fi
		kill -0 "${pids[-1]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "run.sh: mcpgate did not start" >&2
	return 1
}

# verify_audit checks the gateway's audit log end to end, to show it was
# really on, and prints the verifier's one-line verdict.
verify_audit() {
	[[ -s $tmp/audit.jsonl ]] || { echo "audit: no log written" >&2; return 1; }
	"$tmp/bin/mcpgate" audit verify "$tmp/audit.jsonl" --key "$tmp/audit.pub"
}

# load SERVER ERA C URL KEY ROUND: one loadgen run, which also samples the
# server's RSS and reads its CPU time (and, for the gateway in front of an
# HTTP upstream, that upstream's: the direct server works for its calls);
# appends its summary, tagged with the server name and round, to
# results.jsonl. Failures are remembered, not fatal, so the table still
# shows every other cell.
load() {
	local server=$1 era=$2 c=$3 url=$4 key=$5 round=$6 out errlog="$tmp/loadgen-$1-$2-$3.log" extra=()
	echo "  $server $era c=$c" >&2
	[[ $upstream == http && $server == gateway ]] && extra=(-upstream-pid "${spid[direct]}")
	[[ $rate != 0 ]] && extra+=(-rate "$rate")
	# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
	if ! out=$("$tmp/bin/loadgen" -json -url "$url" -era "$era" -c "$c" -d "$duration" -warmup "$warmup" -key "$key" \
		-pid "${spid[$server]}" "${extra[@]}" -sample-every 200ms ${LOADGEN_ARGS:-} 2>"$errlog"); then
		failed=1
		echo "run.sh: $server $era c=$c failed:" >&2
		sed 's/^/    /' "$errlog" >&2
	fi
	[[ -n $out ]] && jq -c --arg s "$server" --argjson r "$round" '. + {server: $s, round: $r}' <<<"$out" >>"$tmp/results.jsonl"
	return 0
}

# warm SERVER URL_LEGACY URL_MODERN KEY: unmeasured load in both eras at
# c=16 for the warm-up time, so that the idle reading after it is of a
# server that has served calls (pools, caches and heap grown), not of a
# fresh process.
warm() {
	local server=$1 key=$4 era url
	for era in legacy modern; do
		url=$2
		[[ $era == modern ]] && url=$3
		# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
		"$tmp/bin/loadgen" -url "$url" -era "$era" -c 16 -d "$warmup" -warmup 0 -key "$key" ${LOADGEN_ARGS:-} >/dev/null 2>"$tmp/warm-$server.log" ||
			{ echo "run.sh: warm-up of $server failed:" >&2; sed 's/^/    /' "$tmp/warm-$server.log" >&2; return 1; }
	done
}

# idle SERVER: the server's settled RSS (2s, then the least of 5 readings
# 200ms apart), appended to idle.jsonl.
idle() {
	local out
	out=$("$tmp/bin/loadgen" -mode rss -json -pid "${spid[$1]}" -settle 2s -samples 5 -sample-interval 200ms)
	jq -c --arg s "$1" '. + {server: $s}' <<<"$out" >>"$tmp/idle.jsonl"
}

# hold_sessions SERVER URL KEY ROUND: N idle legacy sessions on SERVER,
# its RSS read before and while they are held; appended to sessions.jsonl.
hold_sessions() {
	local server=$1 out errlog="$tmp/sessions-$1.log"
	echo "  $server: $sessions idle sessions" >&2
	if ! out=$("$tmp/bin/loadgen" -mode sessions -json -sessions "$sessions" -c 16 -url "$2" -key "$3" \
		-pid "${spid[$server]}" -settle "$session_settle" -samples 5 -sample-interval 200ms 2>"$errlog"); then
		failed=1
		echo "run.sh: $server sessions failed:" >&2
		sed 's/^/    /' "$errlog" >&2
	fi
	[[ -n $out ]] && jq -c --arg s "$server" --argjson r "$4" '. + {server: $s, round: $r}' <<<"$out" >>"$tmp/sessions.jsonl"
	return 0
}

# jq_cpu holds the jq definitions cpu_table and target share: a loadgen
# summary's CPU µs per call, the server's with its descendants' (and the
# HTTP upstream's, when the summary has it), and one side's means over
# rounds, or null when that side has no summaries.
jq_cpu='
  def cpu_total: if . == null then null else .cpu_us_per_call_self + .cpu_us_per_call_children + (.cpu_us_per_call_upstream // 0) end;
  def cpu_side(s): map(select(.server == s)) | if length > 0 then
      {total: (map(cpu_total) | add / length), self: (map(.cpu_us_per_call_self) | add / length),
       loadgen: (map(.cpu_us_per_call_loadgen) | add / length)} else null end;
'

# table prints the markdown comparison, one row per era and concurrency:
# means over rounds, except max latency (the largest of any round) and the
# ratio's range (the smallest and largest of the per-round ratios).
table() {
	jq -rs --arg base "$base" '
	  def mean(f): (map(f) | add / length);
	  def fmt(x): if x == null then "n/a" else (x * 100 | round / 100 | tostring) end;
	  def side(s): map(select(.server == s)) | if length > 0 then
	      {cps: mean(.calls_per_s), p50: mean(.p50_ms), p99: mean(.p99_ms), max: (map(.max_ms) | max)} else null end;
	  group_by([.era, .concurrency]) | map(
	    {era: .[0].era, c: .[0].concurrency, b: side($base), g: side("gateway"),
	     ratios: (group_by(.round) | map(
	       (map(select(.server == $base))[0].calls_per_s) as $b | (map(select(.server == "gateway"))[0].calls_per_s) as $g |
	       if $b != null and $g != null and $b > 0 then $g / $b else empty end)),
	     errors: (map(.errors + .warmup_errors + .teardown_errors) | add)}
	  ) | sort_by(.era, .c) |
	  "| era | c | \($base) calls/s | gateway calls/s | ratio | ratio per round | \($base) p50 / p99 / max ms | gateway p50 / p99 / max ms | p99 added ms | errors |",
	  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
	  (.[] | "| \(.era) | \(.c) | \(fmt(.b.cps)) | \(fmt(.g.cps)) | \(if .b.cps > 0 and .g != null then fmt(.g.cps / .b.cps) else "n/a" end) | \(.ratios | map(fmt(.)) | join(", ")) | \(fmt(.b.p50)) / \(fmt(.b.p99)) / \(fmt(.b.max)) | \(fmt(.g.p50)) / \(fmt(.g.p99)) / \(fmt(.g.max)) | \(if .b != null and .g != null then fmt(.g.p99 - .b.p99) else "n/a" end) | \(.errors) |")
	' "$tmp/results.jsonl"
}

# cpu_table prints, per era and concurrency, each side's CPU time per
# successful call (the server process and its descendants; for the gateway
# also itself alone, and its HTTP upstream's with --upstream http), the CPU
# cost ratio (baseline ÷ gateway: 1 means the gateway path costs the
# baseline's CPU per call; higher is better, like the calls/s ratio), each
# round's, and the load generator's own CPU per call on either side. Means
# over rounds.
cpu_table() {
	jq -rs --arg base "$base" --arg up "$upstream" "$jq_cpu"'
	  def fmt(x): if x == null then "n/a" else (x * 100 | round / 100 | tostring) end;
	  def us(x): if x == null then "n/a" else (x | round | tostring) end;
	  map(select(.cpu_us_per_call_self != null)) | group_by([.era, .concurrency]) | map(
	    {era: .[0].era, c: .[0].concurrency, b: cpu_side($base), g: cpu_side("gateway"),
	     ratios: (group_by(.round) | map(
	       (map(select(.server == $base))[0] | cpu_total) as $b | (map(select(.server == "gateway"))[0] | cpu_total) as $g |
	       if $b != null and $g != null and $g > 0 then $b / $g else empty end))}
	  ) | sort_by(.era, .c) |
	  "| era | c | \($base) CPU µs/call | gateway CPU µs/call (gateway alone) | CPU cost ratio | cost ratio per round | loadgen CPU µs/call \($base) / gateway |",
	  "|---|---:|---:|---:|---:|---:|---:|",
	  (.[] | "| \(.era) | \(.c) | \(us(.b.total)) | \(us(.g.total)) (\(us(.g.self))) | \(if .b != null and .g != null and .g.total > 0 then fmt(.b.total / .g.total) else "n/a" end) | \(.ratios | map(fmt(.)) | join(", ")) | \(us(.b.loadgen)) / \(us(.g.loadgen)) |"),
	  "",
	  "CPU: utime + stime over each measured window ÷ successful calls; a server counts with its descendants\(if $up == "http" then ", and the gateway with its url: upstream (the \($base) server) during its runs" else "" end)."
	' "$tmp/results.jsonl"
}

# memory_table prints each server's idle RSS (the mean over every fresh
# pair of servers this run started, with the range) and, per era and
# concurrency, its peak RSS under load (the largest of any round), in MiB.
# The gateway's children (the sandboxed stdio upstream and its init) are a
# column of their own: they are separate processes, not in its VmRSS.
memory_table() {
	jq -rn --arg base "$base" --slurpfile idle "$tmp/idle.jsonl" --slurpfile res "$tmp/results.jsonl" '
	  def mib(kb): if kb == null then "n/a" else (kb / 1024 * 10 | round / 10 | tostring) end;
	  def spread(f): (map(f)) as $v | if ($v | length) == 0 then "n/a" elif ($v | length) == 1 then mib($v[0])
	    else "\(mib($v | add / length)) [\(mib($v | min))–\(mib($v | max))]" end;
	  ($idle | map(select(.server == $base))) as $ib | ($idle | map(select(.server == "gateway"))) as $ig |
	  "| | \($base) RSS MiB | gateway RSS MiB | gateway children RSS MiB (processes) | gateway + children ÷ \($base) |",
	  "|---|---:|---:|---:|---:|",
	  "| idle, settled after warm-up (\($ib | length) fresh starts: mean [min–max]) | \($ib | spread(.self_kb)) | \($ig | spread(.self_kb)) | \($ig | spread(.children_kb)) (\($ig[0].children // 0)) | \(if ($ib | length) > 0 and ($ig | length) > 0 then ((($ig | map(.self_kb + .children_kb) | add / length) / ($ib | map(.self_kb) | add / length)) * 100 | round / 100 | tostring) else "n/a" end) |",
	  ($res | group_by([.era, .concurrency]) | sort_by(.[0].era, .[0].concurrency)[] |
	    (map(select(.server == $base) | .rss_peak.self_kb) | max) as $b |
	    (map(select(.server == "gateway") | .rss_peak.self_kb) | max) as $g |
	    (map(select(.server == "gateway") | .rss_peak) | max_by(.children_kb)) as $gc |
	    "| peak under load, \(.[0].era) c=\(.[0].concurrency) | \(mib($b)) | \(mib($g)) | \(mib($gc.children_kb)) (\($gc.children)) | \(if $b > 0 and $g != null then (($g + $gc.children_kb) / $b * 100 | round / 100 | tostring) else "n/a" end) |")
	'
}

# sessions_table prints memory per idle session per server: the mean over
# rounds and each round's figure, in KiB (/proc's "kB" are 1024 bytes).
sessions_table() {
	jq -rs '
	  def mean(f): (map(f) | add / length);
	  def r1(x): (x * 10 | round / 10 | tostring);
	  group_by(.server) | sort_by(.[0].server)[] |
	    "| \(.[0].server) | \(.[0].sessions) | \(map(.lost) | add) | \(r1(mean(.before.self_kb) / 1024)) | \(r1(mean(.held.self_kb) / 1024)) | **\(r1(mean(.per_session_kb)))** | \(map(r1(.per_session_kb)) | join(", ")) | \(r1(mean(.children_per_session_kb))) | \(r1(mean(.closed.self_kb) / 1024)) | \(r1(mean(.open_s))) |"
	' "$tmp/sessions.jsonl" | {
		echo "| server | sessions | lost | RSS before MiB | RSS held MiB | KiB per session | per round | children KiB per session | RSS after close MiB | open s |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		cat
	}
}

# target reports issue 8's goals, informing rather than failing the run:
# one short run on a shared host is too noisy to gate on.
target() {
	echo
	if [[ -s $tmp/results.jsonl ]]; then
		jq -rs --arg base "$base" --argjson goal "$goal" --argjson p99 "$p99_goal_ms" '
		  def r2(x): (x * 100 | round / 100);
		  def mean(f): (map(f) | add / length);
		  group_by([.era, .concurrency]) | map(
		    (map(select(.server == $base))) as $b | (map(select(.server == "gateway"))) as $g |
		    select(($b | length) > 0 and ($g | length) > 0) |
		    {era: .[0].era, c: .[0].concurrency, ratio: (($g | mean(.calls_per_s)) / ($b | mean(.calls_per_s))),
		     added: (($g | mean(.p99_ms)) - ($b | mean(.p99_ms)))}) |
		  "target gateway >= \($goal)x \($base) calls/s: " +
		    (map("\(.era) c=\(.c) \(r2(.ratio))x \(if .ratio >= $goal then "(met)" else "(MISSED)" end)") | join(", ")),
		  "target p99 added <= \($p99) ms at c=16: " +
		    (map(select(.c == 16) | "\(.era) \(r2(.added)) ms \(if .added <= $p99 then "(met)" else "(MISSED)" end)") | join(", "))
		' "$tmp/results.jsonl"
		jq -rs --arg base "$base" "$jq_cpu"'
		  map(select(.cpu_us_per_call_self != null and .concurrency == 16)) | group_by(.era) |
		  map({era: .[0].era, b: cpu_side($base), g: cpu_side("gateway")} | select(.b != null and .g != null)) |
		  "CPU per call at c=16: " + (map("\(.era) gateway \(.g.total | round) µs vs \($base) \(.b.total | round) µs (cost ratio \(if .g.total > 0 then (.b.total / .g.total * 100 | round / 100 | tostring) else "n/a" end))") | join(", "))
		' "$tmp/results.jsonl"
	fi
	if [[ -s $tmp/sessions.jsonl ]]; then
		jq -rs --argjson goal "$session_goal_kb" '
		  (map(select(.server == "gateway") | .per_session_kb) | add / length) as $kib |
		  # /proc counts KiB; the goal is in KB of 1000 bytes.
		  "target gateway <= \($goal) KB per idle session: \($kib * 1.024 * 10 | round / 10) KB \(if $kib * 1.024 <= $goal then "(met)" else "(MISSED)" end)"
		' "$tmp/sessions.jsonl"
	fi
}

# start_servers: starts the baseline and the gateway (or a second bare
# server) and fills urls (SERVER/ERA to endpoint), spid (SERVER to the
# process whose memory is read: the gateway itself; its children are found
# under it) and pair (their pids, for stop_servers).
start_servers() {
	local bare gateway direct
	pair=()
	if [[ -n $upstream ]]; then
		start_direct direct
		urls[direct/legacy]=$direct urls[direct/modern]=$direct
		bare=$direct
	else
		start_bare bare bare
		urls[bare/legacy]="$bare/legacy" urls[bare/modern]="$bare/modern"
	fi
	spid[$base]=${pids[-1]}
	pair+=("${pids[-1]}")
	if [[ $upstream == http ]]; then
		start_gateway "$key" gateway "$direct"
		urls[gateway/legacy]=$gateway urls[gateway/modern]=$gateway
	elif ((forwarder)); then
		# The forwarder's child is the demo unsandboxed: what the ceiling
		# leaves out, the sandbox included, is what mcpgate adds.
		# shellcheck disable=SC2086 # forwarder_args is a list of flags
		start_printing gateway gateway "listening on " "$tmp/bin/forward" -addr 127.0.0.1:0 $forwarder_args "$tmp/bin/mcpgate" demo
		urls[gateway/legacy]="$gateway/legacy" urls[gateway/modern]="$gateway/modern"
	elif ((bare_vs_bare)); then
		start_bare gateway gateway
		urls[gateway/legacy]="$gateway/legacy" urls[gateway/modern]="$gateway/modern"
	else
		start_gateway "$key" gateway
		urls[gateway/legacy]=$gateway urls[gateway/modern]=$gateway
	fi
	spid[gateway]=${pids[-1]}
	pair+=("${pids[-1]}")
	local served="stdio (builtin demo)"
	((in_process)) && served="in process (builtin demo, insecure_in_process)"
	echo "$base: $bare  gateway: $gateway  upstream: ${upstream:-$served}" >&2
	((forwarder)) && echo "the \"gateway\" column is bench/forward ${forwarder_args:-(raw)}, no checks: a ceiling, not mcpgate" >&2
	return 0
}

# stop_servers stops the pair start_servers started (the gateway stops its
# own children) and forgets their pids, so cleanup never signals a pid the
# system may since have given to someone else.
stop_servers() {
	local pid keep=()
	for pid in "${pair[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pair[@]}"; do wait "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		[[ " ${pair[*]} " == *" $pid "* ]] || keep+=("$pid")
	done
	pids=("${keep[@]}")
	pair=()
}

# warm_and_idle: warms both servers up, then reads their idle RSS.
warm_and_idle() {
	local server k
	for server in $base gateway; do
		k=""
		[[ $server == gateway ]] && k=$key # the baseline has no auth
		warm "$server" "${urls[$server/legacy]}" "${urls[$server/modern]}" "$k"
	done
	for server in $base gateway; do idle "$server"; done
}

main() {
	build
	key=$(new_key)
	declare -gA urls spid
	pair=()
	echo "duration: $duration (+$warmup warm-up)" >&2
	# Client and both servers share this host's CPUs; say how busy it is so
	# that a reader can judge the noise.
	echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

	failed=0
	local cell=0 order server round k
	: >"$tmp/results.jsonl"
	: >"$tmp/idle.jsonl"
	: >"$tmp/sessions.jsonl"

	# Idle sessions: every round on freshly started servers, warmed up. A Go
	# server keeps the pages it once grew into, so a second round on the
	# same process would measure reuse of the first round's memory.
	if ((sessions > 0)); then
		for ((round = 1; round <= session_rounds; round++)); do
			echo "sessions round $round: fresh servers, warm-up, idle RSS" >&2
			start_servers
			warm_and_idle
			order="$base gateway"
			((round % 2)) || order="gateway $base"
			for server in $order; do
				k=""
				[[ $server == gateway ]] && k=$key
				hold_sessions "$server" "${urls[$server/legacy]}" "$k" "$round"
			done
			stop_servers
		done
	fi

	if ((rounds > 0)); then
		echo "load: fresh servers, warm-up, idle RSS" >&2
		start_servers
		warm_and_idle
	fi
	for ((round = 1; round <= rounds; round++)); do
		for era in legacy modern; do
			for c in $concurrencies; do
				order="$base gateway"
				(((cell + round) % 2)) && order="gateway $base"
				cell=$((cell + 1))
				for server in $order; do
					for pid in "${pids[@]}"; do
						kill -0 "$pid" 2>/dev/null || { echo "run.sh: a server exited early" >&2; exit 1; }
					done
					k=""
					[[ $server == gateway ]] && k=$key # the baseline has no auth
					load "$server" "$era" "$c" "${urls[$server/$era]}" "$k" "$round"
				done
			done
		done
	done

	[[ -n $keep ]] && cat "$tmp/results.jsonl" "$tmp/sessions.jsonl" "$tmp/idle.jsonl" >"$keep"
	echo
	if [[ -s $tmp/results.jsonl ]]; then
		[[ $rate != 0 ]] && printf 'Paced: every run was offered %s calls/s (open loop); latency counts from when each call was due.\n\n' "$rate"
		table
		echo
		cpu_table
		echo
	fi
	memory_table
	if [[ -s $tmp/sessions.jsonl ]]; then
		echo
		sessions_table
	fi
	target
	if ((!bare_vs_bare && !forwarder)); then
		# Stopped first, so the gateway drains and signs its final
		# checkpoint: the whole log is then verified, not just chained.
		stop_servers
		echo
		verify_audit || failed=1
	fi
	if ((failed)); then
		echo "run.sh: some calls failed (see above)" >&2
		exit 1
	fi
}

main
