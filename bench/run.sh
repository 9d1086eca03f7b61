#!/usr/bin/env bash
# bench/run.sh — tools/call throughput and latency of mcpgate (auth on)
# against a bare go-sdk server serving the same demo tool, in one run.
# With --upstream, the baseline is instead the demo upstream called directly
# ("direct"), and mcpgate fronts it as a url: (http) or stdio (stdio) upstream.
#
# Both servers run at once on loopback; for every era and concurrency the
# load generator hits one then the other (the order alternates from cell to
# cell and round to round), so machine noise lands on both alike.
#
# Usage: bench/run.sh [-d DURATION] [-w WARMUP] [-c "1 16 64"] [-r ROUNDS]
#                     [-o RESULTS.jsonl] [--bare-vs-bare | --upstream http|stdio]
#   -d   measured duration per run (default 10s)
#   -w   unmeasured warm-up per run (default 2s)
#   -c   concurrency levels (default "1 16 64")
#   -r   rounds; table values are means over rounds (default 1)
#   -o   also keep every loadgen summary, one JSON object a line
#   --bare-vs-bare  use a second bare server in place of mcpgate (checks
#                   the harness itself; the ratio should be about 1)
#   --upstream http   start "mcpgate demo --listen" once; measure it directly
#                     and through mcpgate with it as a url: upstream
#   --upstream stdio  mcpgate runs the demo as a stdio child (builtin: demo);
#                     the loadgen speaks only HTTP, so the direct baseline is
#                     the same demo server over HTTP ("mcpgate demo --listen")
# Env: MCPGATE_ARGS adds flags to "mcpgate serve" (e.g. "--log-level warn");
#      LOADGEN_ARGS adds flags to every loadgen run (e.g. "-tool echo -args '{}'").
#
# Exits non-zero if any call failed or a server did not start.
set -euo pipefail

duration=10s warmup=2s concurrencies="1 16 64" rounds=1 keep="" bare_vs_bare=0 upstream=""
while (($#)); do
	case $1 in
	-d) duration=$2; shift 2 ;;
	-w) warmup=$2; shift 2 ;;
	-c) concurrencies=$2; shift 2 ;;
	-r) rounds=$2; shift 2 ;;
	-o) keep=$2; shift 2 ;;
	--bare-vs-bare) bare_vs_bare=1; shift ;;
	--upstream) upstream=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done
case $upstream in
"" | http | stdio) ;;
*) echo "run.sh: --upstream takes http or stdio, not $upstream" >&2; exit 2 ;;
esac
if ((bare_vs_bare)) && [[ -n $upstream ]]; then
	echo "run.sh: --bare-vs-bare and --upstream do not combine" >&2
	exit 2
fi
# base names the baseline server in results and tables; goal is the issue's
# target ratio at c=16 for this mode.
base=bare goal=0.9
[[ -n $upstream ]] && base=direct goal=0.8
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
	(cd "$root" && go build -o "$tmp/bin/" ./bench/bare ./bench/loadgen)
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
# (builtin: demo), or the server at UPSTREAM_URL if given.
start_gateway() {
	local key=$1 port digest up='{builtin: demo, namespace: ""}'
	[[ -n ${3:-} ]] && up="{url: \"$3\", namespace: \"\"}"
	port=$(free_port)
	digest=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
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
		# measured) but high enough never to refuse a call.
		limits:
		  per_principal: {rate: 1000000, burst: 1000000, concurrent: 100000}
		  concurrent_total: 100000
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

# load SERVER ERA C URL KEY: one loadgen run; appends its summary, tagged
# with the server name, to results.jsonl. Failures are remembered, not fatal,
# so the table still shows every other cell.
load() {
	local server=$1 era=$2 c=$3 url=$4 key=$5 out errlog="$tmp/loadgen-$1-$2-$3.log"
	echo "  $server $era c=$c" >&2
	# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
	if ! out=$("$tmp/bin/loadgen" -json -url "$url" -era "$era" -c "$c" -d "$duration" -warmup "$warmup" -key "$key" ${LOADGEN_ARGS:-} 2>"$errlog"); then
		failed=1
		echo "run.sh: $server $era c=$c failed:" >&2
		sed 's/^/    /' "$errlog" >&2
	fi
	[[ -n $out ]] && jq -c --arg s "$server" '. + {server: $s}' <<<"$out" >>"$tmp/results.jsonl"
	return 0
}

# table prints the markdown comparison, one row per era and concurrency,
# averaging over rounds.
table() {
	jq -rs --arg base "$base" '
	  def mean(f): (map(f) | add / length);
	  def fmt(x): if x == null then "n/a" else (x * 100 | round / 100 | tostring) end;
	  group_by([.era, .concurrency]) | map(
	    (map(select(.server == $base))) as $b | (map(select(.server == "gateway"))) as $g |
	    {era: .[0].era, c: .[0].concurrency,
	     b: (if ($b|length) > 0 then {cps: $b|mean(.calls_per_s), p50: $b|mean(.p50_ms), p99: $b|mean(.p99_ms)} else null end),
	     g: (if ($g|length) > 0 then {cps: $g|mean(.calls_per_s), p50: $g|mean(.p50_ms), p99: $g|mean(.p99_ms)} else null end),
	     errors: (map(.errors + .warmup_errors + .teardown_errors) | add)}
	  ) | sort_by(.era, .c) |
	  "| era | c | \($base) calls/s | gateway calls/s | ratio | \($base) p50 ms | \($base) p99 ms | gateway p50 ms | gateway p99 ms | errors |",
	  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
	  (.[] | "| \(.era) | \(.c) | \(fmt(.b.cps)) | \(fmt(.g.cps)) | \(if .b.cps > 0 and .g != null then fmt(.g.cps / .b.cps) else "n/a" end) | \(fmt(.b.p50)) | \(fmt(.b.p99)) | \(fmt(.g.p50)) | \(fmt(.g.p99)) | \(.errors) |")
	' "$tmp/results.jsonl"
}

# target reports the issue's goal: gateway at >= 0.9x the bare server's
# calls/s at concurrency 16 (>= 0.8x the direct upstream with --upstream). It informs; it does not fail the run, because
# one short run on a shared host is too noisy to gate on.
target() {
	jq -rs --arg base "$base" --argjson goal "$goal" '
	  map(select(.concurrency == 16)) | group_by(.era) | map(
	    (map(select(.server == $base) | .calls_per_s) | add / length) as $b |
	    (map(select(.server == "gateway") | .calls_per_s) | add / length) as $g |
	    if $b > 0 then "\(.[0].era) \($g / $b * 100 | round / 100)x \(if $g >= $goal * $b then "(met)" else "(MISSED)" end)"
	    else "\(.[0].era) n/a" end
	  ) | select(length > 0) | "\ntarget gateway >= \($goal)x \($base) at c=16: " + join(", ")
	' "$tmp/results.jsonl"
}

main() {
	build
	local key bare gateway direct
	key=$(new_key)
	declare -A urls
	if [[ -n $upstream ]]; then
		start_direct direct
		urls[direct/legacy]=$direct urls[direct/modern]=$direct
		bare=$direct
	else
		start_bare bare bare
		urls[bare/legacy]="$bare/legacy" urls[bare/modern]="$bare/modern"
	fi
	if [[ $upstream == http ]]; then
		start_gateway "$key" gateway "$direct"
		urls[gateway/legacy]=$gateway urls[gateway/modern]=$gateway
	elif ((bare_vs_bare)); then
		start_bare gateway gateway
		urls[gateway/legacy]="$gateway/legacy" urls[gateway/modern]="$gateway/modern"
	else
		start_gateway "$key" gateway
		urls[gateway/legacy]=$gateway urls[gateway/modern]=$gateway
	fi
	echo "$base: $bare  gateway: $gateway  upstream: ${upstream:-stdio (builtin demo)}  duration: $duration (+$warmup warm-up)" >&2
	# Client and both servers share this host's CPUs; say how busy it is so
	# that a reader can judge the noise.
	echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

	failed=0
	: >"$tmp/results.jsonl"
	local cell=0 order
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
					local k=""
					[[ $server == gateway ]] && k=$key # the baseline has no auth
					load "$server" "$era" "$c" "${urls[$server/$era]}" "$k"
				done
			done
		done
	done

	[[ -n $keep ]] && cp "$tmp/results.jsonl" "$keep"
	echo
	table
	target
	if ((failed)); then
		echo "run.sh: some calls failed (see above)" >&2
		exit 1
	fi
}

main
