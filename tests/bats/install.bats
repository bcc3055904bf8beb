#!/usr/bin/env bats
# make install: PREFIX and DESTDIR, and an installed libkcm that builds and links.

load helpers

setup() {
	TMP=$(mktemp -d)
}

teardown() {
	rm -rf "$TMP"
}

@test "make install honours PREFIX and DESTDIR and installs every part" {
	run make -C "$TOP" --no-print-directory install DESTDIR="$TMP/root" PREFIX=/opt/kcm
	[ "$status" -eq 0 ]
	r=$TMP/root/opt/kcm
	[ -x "$r/bin/kcm-loader" ]
	[ -f "$r/lib/libkcm.a" ]
	[ -L "$r/lib/libkcm.so" ]
	[ -f "$r/include/kcm.h" ]
	[ -f "$r/include/kcm_inspect.h" ]
	[ -f "$r/lib/kcm-bpf/kcm.bpf.o" ]
	for p in thrift dns http2 kafka memcached mqtt; do
		[ -f "$r/lib/kcm-bpf/parsers/$p.bpf.o" ]
	done
	[ -f "$r/include/kcm-bpf/kcm_parser.h" ]
	[ -f "$r/include/kcm-bpf/kcm_shared.h" ]
	[ -f "$r/include/kcm-bpf/kcm_mux_maps.h" ]
	[ -f "$r/include/kcm-bpf/kcm_account.h" ]
	[ -f "$r/share/man/man8/kcm-loader.8" ]
	[ -f "$r/share/bash-completion/completions/kcm-loader" ]
	[ -f "$r/share/doc/kcm-bpf/flow-control.md" ]
	[ -f "$r/share/man/man3/libkcm.3" ]
	grep -q '^prefix=/opt/kcm$' "$r/lib/pkgconfig/libkcm.pc"
	# nothing escaped DESTDIR
	[ ! -e /opt/kcm ]
}

@test "an installed libkcm compiles and links through pkg-config" {
	make -C "$TOP" --no-print-directory install DESTDIR="$TMP/root" PREFIX=/usr/local >/dev/null
	r=$TMP/root/usr/local
	cat > "$TMP/app.c" <<'C'
#include <kcm.h>
#include <stdio.h>
int main(void)
{
	struct kcm_framing f;
	char buf[32];

	if (kcm_framing_parse("dns", &f))
		return 1;
	kcm_framing_format(&f, buf, sizeof(buf));
	puts(buf);
	return 0;
}
C
	flags=$(PKG_CONFIG_SYSROOT_DIR="$TMP/root" PKG_CONFIG_PATH="$r/lib/pkgconfig" \
		pkg-config --cflags --libs libkcm)
	run cc -o "$TMP/app" "$TMP/app.c" $flags -Wl,-rpath,"$r/lib"
	[ "$status" -eq 0 ]
	run "$TMP/app"
	[ "$status" -eq 0 ]
	[ "$output" = "u16be+2@0" ]
}

@test "the installed parser SDK builds a parser with the documented command, and --frame finds it" {
	make -C "$TOP" --no-print-directory install DESTDIR="$TMP/root" PREFIX=/usr/local >/dev/null
	r=$TMP/root/usr/local
	cat > "$TMP/lenpfx.bpf.c" <<'C'
#include <kcm_parser.h>

KCM_PARSER(lenpfx)
{
	return kcm_load_be16(ctx, 0) + 2;
}
C
	run clang -O2 -g -target bpf -I/usr/include/"$(uname -m)"-linux-gnu \
		-I"$r/include/kcm-bpf" -c "$TMP/lenpfx.bpf.c" -o "$TMP/lenpfx.bpf.o"
	[ "$status" -eq 0 ]
	run llvm-objdump -h "$TMP/lenpfx.bpf.o"
	[[ "$output" == *"sk_skb/stream_parser"* ]]
	# the installed loader lists the installed parsers (PREFIX/lib/kcm-bpf/parsers)
	run "$r/bin/kcm-loader" parsers --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r '.[] | select(.name == "dns") | .object')" = \
		"$r/bin/../lib/kcm-bpf/parsers/dns.bpf.o" ]
}

@test "the man pages render" {
	run groff -man -Tutf8 -ww -z "$TOP/docs/kcm-loader.8"
	[ "$status" -eq 0 ]
	[ -z "$output" ] # no warnings
	run groff -man -Tascii -P-cbou "$TOP/docs/kcm-loader.8"
	[[ "$output" == *"pidfd_getfd"* ]]
	run groff -man -Tutf8 -ww -z "$TOP/docs/libkcm.3"
	[ -z "$output" ]
	run groff -man -Tascii -P-cbou "$TOP/docs/libkcm.3"
	[[ "$output" == *"kcm_recv_disable"* ]]
}

@test "libkcm.so exports exactly the functions kcm.h declares, and libkcm(3) names each one" {
	[ -f "$BUILD/libkcm.so" ] || skip "not built: $BUILD/libkcm.so"
	# declared: every kcm_*( in the public header
	cat "$TOP"/user/include/kcm*.h | grep -oE '\bkcm_[a-z0-9_]+\(' | tr -d '(' | sort -u \
		>"$TMP/declared"
	nm -D --defined-only "$BUILD/libkcm.so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' |
		sort -u >"$TMP/exported"
	diff "$TMP/declared" "$TMP/exported"
	[ "$(wc -l <"$TMP/declared")" -gt 30 ]
	# internal helpers stay inside
	! grep -qx 'kcm_fail\|kcm_steer_sync\|kcm_pin_path' "$TMP/exported"
	while read -r f; do
		grep -qE "\\b$f\\b" "$TOP/docs/libkcm.3" || { echo "libkcm.3 lacks $f"; false; }
	done <"$TMP/declared"
}

@test "help texts cite documents that are installed: every *.md named is in the folder they give" {
	run make -C "$TOP" --no-print-directory install DESTDIR="$TMP/root" PREFIX=/opt/kcm
	[ "$status" -eq 0 ]
	r=$TMP/root/opt/kcm
	# nothing cites the source tree's docs/ folder
	! strings "$r/bin/kcm-loader" "$r/lib/libkcm.so" | grep -n 'docs/[a-z-]*\.md'
	for cmd in create attach connect monitor; do
		run "$r/bin/kcm-loader" "$cmd" --help
		[ "$status" -eq 0 ]
		dir=$(sed -n 's/^The documents named \*\.md above are in \(.*\)\.$/\1/p' <<<"$output")
		[ "$dir" = "$r/share/doc/kcm-bpf" ]
		for md in $(grep -oE '[a-z-]+\.md' <<<"$output" | sort -u); do
			[ -f "$dir/$md" ] || { echo "$cmd --help cites $md, not in $dir"; return 1; }
		done
	done
}
