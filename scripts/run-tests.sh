#!/usr/bin/env bash
# Run every test: the C unit tests, then each bats suite, then the checks that the run
# left nothing behind (namespaces, pins, programs, processes, kernel warnings).
# Ends with "N passed, N failed"; exits 1 when anything failed.
#
#   scripts/run-tests.sh [SUITE...]    only these suites (tests/bats/SUITE.bats; traffic
#                                      brings its parser-program reruns), e.g. traffic api
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
build=${BUILD:-$top/build}
export BUILD=$build

selected=("$@")
for s in "${selected[@]}"; do
	[ -f "tests/bats/$s.bats" ] || { echo "run-tests: no suite tests/bats/$s.bats" >&2; exit 2; }
done

passed=0
failed=0
skipped=0
failures=()

result() { # result ok|fail|skip NAME [DETAIL]
	case $1 in
	ok) passed=$((passed + 1)); echo "ok      $2" ;;
	skip) skipped=$((skipped + 1)); echo "skip    $2${3:+ ($3)}" ;;
	*) failed=$((failed + 1)); failures+=("$2"); echo "FAIL    $2${3:+: $3}" ;;
	esac
}

# (a parser's splitting copy is a sched_cls program, but so are the tests' own tc programs,
# which go with their namespaces some time later: its pin is what the pins check sees)
count_progs() { bpftool prog show 2>/dev/null | grep -cE ' (sk_skb|sk_msg|sock_ops|cgroup_sockopt) '; }
count_maps() { bpftool map show 2>/dev/null | grep -cE ' (sockmap|sockhash) '; }
# One kernel warning is known and not ours to fix: inet_sock_destruct finding
# sk_forward_alloc off when a UDP KCM socket is freed, a race in the kernel's sockmap
# ingress accounting (docs/kernels.md, "sk_forward_alloc"). It is shown, not failed.
KNOWN_WARNING='WARNING: .* inet_sock_destruct'
kernel_warnings() { dmesg 2>/dev/null | grep -E 'WARNING:|BUG:|general protection' | grep -v 'Speculative Return Stack'; }
count_warnings() { kernel_warnings | grep -vcE "$KNOWN_WARNING"; }
count_known() { kernel_warnings | grep -cE "$KNOWN_WARNING"; }
list_pins() { ls /sys/fs/bpf/kcm 2>/dev/null | sort; }

# What `kcm-loader check` finds on this kernel, asked once for the whole run: every suite
# reads it (helpers.bash) to skip what the kernel cannot do, and a check loads the data
# plane, which takes a minute of emulated CPU on 5.10. It exits 1 when something is
# missing: that is an answer, not a failure.
export KCM_CHECK_JSON
KCM_CHECK_JSON=$(mktemp --tmpdir kcm-check.XXXXXX.json)
trap 'rm -f "$KCM_CHECK_JSON"' EXIT

# has_feature NAME: `kcm-loader check` reports NAME ok on this kernel
has_feature() {
	jq -e --arg n "$1" 'any(.[]; .name == $n and .state == "ok")' "$KCM_CHECK_JSON" >/dev/null 2>&1
}

root=0
[ "$(id -u)" -eq 0 ] && root=1
if [ $root = 1 ]; then
	progs_before=$(count_progs)
	maps_before=$(count_maps)
	warn_before=$(count_warnings)
	warn_seen=$warn_before
	known_seen=$(count_known)
	pins_before=$(list_pins)
fi

# (after the counts above: the check's own programs go some time after it exits)
[ -x "$build/kcm-loader" ] && "$build/kcm-loader" check --json >"$KCM_CHECK_JSON" 2>/dev/null

echo "== unit tests"
for t in "$build"/tests/unit_*; do
	[ -x "$t" ] || continue
	if out=$("$t" 2>&1); then
		result ok "unit: $(basename "$t")"
	else
		echo "$out" | tail -n 20
		result fail "unit: $(basename "$t")"
	fi
done

# Kernel warnings are checked after every suite, so that one is blamed on the suite that
# caused it, with its first lines (WARN_ON_ONCE prints a warning once per boot).
warned=()
known=()
check_kernel_log() { # check_kernel_log SUITE
	local now
	[ $root = 1 ] || return 0
	now=$(count_warnings)
	if [ "$now" -gt "$warn_seen" ]; then
		warned+=("$1")
		echo "        kernel warning during $1:"
		dmesg | grep -A 12 -E 'WARNING:|BUG:' | grep -v 'Speculative Return Stack' | tail -n 14 |
			sed 's/^/        /'
	fi
	warn_seen=$now
	now=$(count_known)
	if [ "$now" -gt "$known_seen" ]; then
		known+=("$1")
		echo "        known kernel warning during $1 (sk_forward_alloc race, docs/kernels.md):"
		kernel_warnings | grep -E "$KNOWN_WARNING" | tail -n 1 | sed 's/^/        /'
	fi
	known_seen=$now
}

# took "ok 1 NAME in 1234ms # skip WHY": "NAME # skip WHY", with " (1.2 s)" after NAME when
# the test took a second or more (where a slow kernel spends its time)
took() {
	local ms
	[[ $1 =~ ^(.*)\ in\ ([0-9]+)ms(.*)$ ]] || { echo "$1"; return; }
	ms=${BASH_REMATCH[2]}
	if [ "$ms" -ge 1000 ]; then
		echo "${BASH_REMATCH[1]} ($((ms / 1000)).$((ms % 1000 / 100)) s)${BASH_REMATCH[3]}"
	else
		echo "${BASH_REMATCH[1]}${BASH_REMATCH[3]}"
	fi
}

run_suite() { # run_suite FILE LABEL
	local line start=$SECONDS
	echo "== $1${2:+ ($2)}"
	while IFS= read -r line; do
		case $line in
		"ok "*"# skip"*) line=$(took "$line"); result skip "${line#ok * }" ;;
		"ok "*) line=$(took "$line"); result ok "${2:-$(basename "$1" .bats)}: ${line#ok [0-9]* }" ;;
		"not ok "*) line=$(took "$line"); result fail "${2:-$(basename "$1" .bats)}: ${line#not ok [0-9]* }" ;;
		"#"*) echo "        $line" ;;
		esac
	done < <(bats --tap --timing "$1" 2>&1)
	echo "        ($(basename "$1" .bats)${2:+ as $2}: $((SECONDS - start)) s)"
	check_kernel_log "${2:-$(basename "$1" .bats)}"
}

wanted() { # wanted NAME: no SUITE arguments, or NAME among them
	local s
	[ ${#selected[@]} -eq 0 ] && return 0
	for s in "${selected[@]}"; do
		[ "$s" = "$1" ] && return 0
	done
	return 1
}

for suite in tests/bats/*.bats; do
	wanted "$(basename "$suite" .bats)" && run_suite "$suite"
done
# monitor's tracing path, which it takes by itself where it cannot arm transports
if wanted monitor && has_feature monitor-arm; then
	KCM_MONITOR_TRACE=1 run_suite tests/bats/monitor.bats monitor-trace
fi
if wanted traffic; then
	# The traffic cases again, through the shipped Thrift parser program (parser SDK).
	KCM_TRAFFIC_PARSER=$build/parsers/thrift.bpf.o run_suite tests/bats/traffic.bats traffic-sdk
	# And once more with the parser's user-space build splitting batches (--frame).
	KCM_TRAFFIC_PARSER=$build/parsers/thrift.bpf.o KCM_TRAFFIC_SPLIT=thrift \
		run_suite tests/bats/traffic.bats traffic-split
	# And with the parser program splitting for itself (--split prog); without UDP
	# FIONREAD traffic-sdk runs that way already.
	if has_feature udp-members; then
		KCM_TRAFFIC_PARSER=$build/parsers/thrift.bpf.o KCM_TRAFFIC_SPLIT=prog \
			run_suite tests/bats/traffic.bats traffic-prog
	fi
	# And the length-prefix parser as a bounded loop, what kernels before bpf_loop (5.17)
	# load, where the kernel would take bpf_loop. Not on an emulated CPU (KCM_TEST_SCALE),
	# where verifying it takes 20 s per mux on 6.1.
	if [ "${KCM_TEST_SCALE:-1}" = 1 ]; then
		KCM_PARSER_LOOP=bounded run_suite tests/bats/traffic.bats traffic-bounded
	fi
fi

echo "== leftovers"
if [ $root = 1 ]; then
	ns=$(ip netns list 2>/dev/null | awk '/^kcm(t|demo)-/ {print $1}' | tr '\n' ' ')
	[ -z "$ns" ] && result ok "no leftover network namespaces" ||
		result fail "no leftover network namespaces" "$ns"
	pins_after=$(list_pins)
	[ "$pins_after" = "$pins_before" ] && result ok "no leftover bpffs pins" ||
		result fail "no leftover bpffs pins" "$(comm -13 <(echo "$pins_before") <(echo "$pins_after") | tr '\n' ' ')"
	# programs and maps are freed asynchronously after their last reference goes
	for _ in $(seq 1 50); do
		[ "$(count_progs)" -le "$progs_before" ] && [ "$(count_maps)" -le "$maps_before" ] && break
		sleep 0.1
	done
	[ "$(count_progs)" -le "$progs_before" ] && result ok "no leftover sk_skb/sk_msg programs" ||
		result fail "no leftover sk_skb/sk_msg programs" "$progs_before before, $(count_progs) after"
	[ "$(count_maps)" -le "$maps_before" ] && result ok "no leftover sockmaps" ||
		result fail "no leftover sockmaps" "$maps_before before, $(count_maps) after"
	procs=$(pgrep -af "$build/(tests/|kcm-loader)" | grep -v pgrep)
	[ -z "$procs" ] && result ok "no leftover test processes" ||
		result fail "no leftover test processes" "$procs"
	warn_after=$(count_warnings)
	[ "$warn_after" -le "$warn_before" ] && result ok "no new kernel warnings in dmesg" ||
		result fail "no new kernel warnings in dmesg" "during: ${warned[*]:-?}; $(dmesg |
			grep -E 'WARNING:|BUG:' | tail -n 3)"
else
	result skip "leftover checks" "needs root"
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
[ $skipped -gt 0 ] && echo "$skipped skipped"
[ ${#known[@]} -gt 0 ] && echo "known kernel warning (docs/kernels.md) during: ${known[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
