#!/usr/bin/env bats
# Options cannot drift between what a command accepts, what its --help lists and what
# kcm-loader(8)'s SYNOPSIS gives it: all three are compared here, per command. Needs no
# root: nothing is loaded (each option is tried before --help, which ends the command).

load helpers

COMMANDS="create attach unattach parsers status connect monitor stats destroy clean check serve"

# man_opts CMD: the long options of CMD's SYNOPSIS block in kcm-loader(8)
man_opts() {
	awk -v cmd="$1" '/^\.SH/ { s = ($2 == "SYNOPSIS"); on = 0; next }
		s && $0 == ".B kcm-loader " cmd { on = 1; next }
		s && /^\.br/ { on = 0 }
		on' "$TOP/docs/kcm-loader.8" |
		grep -oE '\\-\\-[a-z][a-z\\-]*' | sed 's/\\//g' | sort -u
}

# help_opts CMD: the options CMD --help lists (its option lines, not its prose)
help_opts() {
	"$LOADER" "$1" --help | grep -E '^ +(-[a-zA-Z], )?--[a-z]' |
		grep -oE -- '--[a-z][a-z-]*' | head -1000 | awk '!seen[$0]++' |
		grep -vxE -- '--(help|json)' | sort -u
}

@test "every command's --help lists exactly the options kcm-loader(8)'s SYNOPSIS gives it" {
	local c bad=0
	for c in $COMMANDS; do
		if ! diff <(man_opts "$c" | grep -vxE -- '--(help|json)') <(help_opts "$c") \
			>"$BATS_TEST_TMPDIR/d"; then
			echo "$c: man SYNOPSIS (<) and --help (>) differ:"
			cat "$BATS_TEST_TMPDIR/d"
			bad=1
		fi
	done
	[ "$bad" = 0 ]
	# and the check can fail: a SYNOPSIS without connect's --count
	[ -n "$(man_opts connect | grep -x -- --count)" ]
}

@test "every option a command's --help lists is one the command accepts" {
	local c o bad=0
	for c in $COMMANDS; do
		for o in $(help_opts "$c"); do
			# the option (with a dummy value when it takes one), then --help ends it
			run "$LOADER" "$c" "$o" 1 --help
			if [[ "$output" == *"unknown option"* ]]; then
				run "$LOADER" "$c" "$o" --help
			fi
			if [[ "$output" == *"unknown option"* ]]; then
				echo "$c does not accept $o: $output"
				bad=1
			fi
		done
	done
	[ "$bad" = 0 ]
}

@test "an option no --help lists is refused with exit 2, naming it" {
	run "$LOADER" status --frobnicate
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown option '--frobnicate'"* ]]
}
