#!/usr/bin/env bats
# The shape of the source tree: libkcm's files call only lower layers (user/lib/LAYERS),
# so no cycle can come back unnoticed; the check fails on a call that goes up and on a
# file the table does not place.

load helpers

setup() {
	TMP=$(mktemp -d)
}

teardown() {
	rm -rf "$TMP"
}

@test "libkcm: every call between user/lib files goes to a lower layer" {
	run "$TOP/scripts/check-layers.sh" "$BUILD/lib"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"all downwards"* ]]
}

@test "the layer check fails on a call upwards, naming the caller, the symbol and the callee" {
	# mux.c (create/open/close) moved to the bottom: its calls now go up
	sed -e 's/^base: */&mux /' -e '/^api:/s/ mux / /' "$TOP/user/lib/LAYERS" >"$TMP/layers"
	run "$TOP/scripts/check-layers.sh" "$BUILD/lib" "$TMP/layers"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"mux (base) calls kcm_mux_lock in mux_core (core): not a lower layer"* ]]
}

@test "the layer check fails on a file the table does not place" {
	grep -v '^top:' "$TOP/user/lib/LAYERS" >"$TMP/layers"
	run "$TOP/scripts/check-layers.sh" "$BUILD/lib" "$TMP/layers"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"check.o is not in $TMP/layers: place it on a layer"* ]]
	[[ "$output" == *"health.o is not in"* ]]
}

@test "every source file under user/ is under 450 lines" {
	# small files named for what they hold (issue 13): a file past this holds two things
	big=$(find "$TOP/user" -name '*.[ch]' -exec wc -l {} + | awk '$2 != "total" && $1 >= 450')
	echo "$big"
	[ -z "$big" ]
}

@test "kcm-loader includes no private libkcm header: it reads muxes through kcm.h" {
	local h bad=""
	for h in "$TOP"/user/lib/*.h; do
		h=$(basename "$h")
		if grep -ln "#include \"$h\"" "$TOP"/user/loader/*.[ch]; then
			bad="$bad $h"
		fi
	done
	echo "private headers included by the loader:$bad"
	[ -z "$bad" ]
}

@test "test sources sit in folders of one role: unit, api, tools, bench, bpf, parsers" {
	# C programs: unit (no root), api (checks of libkcm), tools (traffic), bench
	local stray
	stray=$(cd "$TOP/tests" && find . -name '*.c' ! -name '*.bpf.c' |
		grep -vE '^\./(unit|api|tools|bench)/' || true)
	echo "C files outside unit/ api/ tools/ bench/: $stray"
	[ -z "$stray" ]
	# BPF objects only tests load live under tests/, not bpf/
	stray=$(cd "$TOP/tests" && find . -name '*.bpf.c' | grep -vE '^\./(bpf|parsers)/' || true)
	echo "BPF sources outside bpf/ parsers/: $stray"
	[ -z "$stray" ]
	! grep -rlE 'bench_|test_' "$TOP/bpf" --include='*.bpf.c'
}
