# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# kcm-bpf: KCM semantics on sockmap. `make`, `make test`, `make demo`, `make install`.

OUTPUT ?= build
PREFIX ?= /usr/local
DESTDIR ?=
CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= gcc
PKG_CONFIG ?= pkg-config

MACHINE := $(shell uname -m)
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' \
	-e 's/s390x/s390/' -e 's/riscv64/riscv/')
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
VMLINUX_VENDORED := vmlinux/$(MACHINE)/vmlinux.h

LIBBPF_CFLAGS := $(shell $(PKG_CONFIG) --cflags libbpf 2>/dev/null)
LIBBPF_LIBS := $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null || echo -lbpf)

# System include dirs clang needs for -target bpf (asm/types.h and friends).
CLANG_BPF_SYS_INCLUDES ?= $(shell $(CLANG) -v -E - </dev/null 2>&1 \
	| sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')

WARN := -Wall -Wextra -Werror
CFLAGS ?= -O2 -g
ALL_CFLAGS := $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -fPIC -I$(OUTPUT) -Ibpf -Iuser/include \
	-Iuser/lib $(LIBBPF_CFLAGS)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -I$(OUTPUT) -Ibpf $(CLANG_BPF_SYS_INCLUDES) \
	-Wall -Werror

# Parser objects are built exactly as docs/parser-sdk.md tells users to: the SDK header,
# no vmlinux.h.
PARSER_CFLAGS := -g -O2 -target bpf -Ibpf $(CLANG_BPF_SYS_INCLUDES) -Wall -Werror

SOVERSION := 0
VERSION := 0.1.0

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.bpf.o,$(BPF_SRCS))
# BPF programs only the tests and benchmarks load (not installed)
TEST_BPF_SRCS := $(wildcard tests/bpf/*.bpf.c)
TEST_BPF_OBJS := $(patsubst tests/bpf/%.bpf.c,$(OUTPUT)/%.bpf.o,$(TEST_BPF_SRCS))
SKELS := $(patsubst %.bpf.c,$(OUTPUT)/%.skel.h,$(notdir $(BPF_SRCS) $(TEST_BPF_SRCS)))
PUBLIC_HEADERS := user/include/kcm.h user/include/kcm_inspect.h user/include/kcm_monitor.h \
	user/include/kcm_sidecar.h
LIB_SRCS := $(wildcard user/lib/*.c)
LIB_OBJS := $(patsubst user/lib/%.c,$(OUTPUT)/lib/%.o,$(LIB_SRCS))
LOADER_SRCS := $(wildcard user/loader/*.c)
LOADER_OBJS := $(patsubst user/loader/%.c,$(OUTPUT)/loader/%.o,$(LOADER_SRCS))
# tests/api: checks of libkcm's API; tests/tools: traffic tools the suites and the demo
# run; tests/bench: benchmarks (rx_bench from tests/bench/rx, tx_bench)
PROG_SRCS := $(wildcard tests/api/*.c tests/tools/*.c tests/bench/*.c)
PROGS := $(patsubst %.c,$(OUTPUT)/tests/%,$(notdir $(PROG_SRCS)))
PARSER_OBJS := $(patsubst bpf/parsers/%.bpf.c,$(OUTPUT)/parsers/%.bpf.o,$(wildcard bpf/parsers/*.bpf.c))
TEST_PARSER_OBJS := $(patsubst tests/parsers/%.bpf.c,$(OUTPUT)/tests/parsers/%.bpf.o,\
	$(wildcard tests/parsers/*.bpf.c))
BENCH_SRCS := $(wildcard tests/bench/rx/*.c)
BENCH := $(OUTPUT)/tests/bench/rx_bench
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNITS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/unit_%,$(UNIT_SRCS))

ifeq ($(V),1)
	Q =
	msg =
else
	Q = @
	msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.PHONY: all clean test test-kernels demo install deps bench bench-tx bench-afkcm check-deps static \
	image
.SECONDARY: $(BPF_OBJS) $(TEST_BPF_OBJS) $(PARSER_OBJS) $(TEST_PARSER_OBJS)

all: $(OUTPUT)/libkcm.a $(OUTPUT)/libkcm.so $(OUTPUT)/kcm-loader $(BPF_OBJS) $(TEST_BPF_OBJS) \
	$(PROGS) $(UNITS) \
	$(PARSER_OBJS) $(TEST_PARSER_OBJS) $(BENCH)

$(OUTPUT) $(OUTPUT)/lib $(OUTPUT)/loader $(OUTPUT)/tests $(OUTPUT)/parsers $(OUTPUT)/tests/parsers \
		$(OUTPUT)/tests/bench:
	$(Q)mkdir -p $@

# vmlinux.h from the running kernel's BTF, else the vendored copy for this machine.
$(OUTPUT)/vmlinux.h: | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)if [ -r $(VMLINUX_BTF) ]; then \
		$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@; \
	elif [ -r $(VMLINUX_VENDORED) ]; then \
		cp $(VMLINUX_VENDORED) $@; \
	else \
		echo "no $(VMLINUX_BTF) and no $(VMLINUX_VENDORED): see vmlinux/README.md" >&2; exit 1; \
	fi

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) $(OUTPUT)/vmlinux.h | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUTPUT)/%.bpf.o: tests/bpf/%.bpf.c $(wildcard bpf/*.h) $(OUTPUT)/vmlinux.h | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# what an SDK parser includes (installed under include/kcm-bpf)
SDK_HEADERS := bpf/kcm_parser.h bpf/kcm_shared.h bpf/kcm_mux_maps.h bpf/kcm_account.h

$(OUTPUT)/parsers/%.bpf.o: bpf/parsers/%.bpf.c $(SDK_HEADERS) | $(OUTPUT)/parsers
	$(call msg,PARSER,$@)
	$(Q)$(CLANG) $(PARSER_CFLAGS) -c $< -o $@

$(OUTPUT)/tests/parsers/%.bpf.o: tests/parsers/%.bpf.c $(SDK_HEADERS) \
		| $(OUTPUT)/tests/parsers
	$(call msg,PARSER,$@)
	$(Q)$(CLANG) $(PARSER_CFLAGS) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst .,_,$*)_bpf > $@

$(OUTPUT)/lib/%.o: user/lib/%.c $(wildcard user/lib/*.h) $(PUBLIC_HEADERS) bpf/kcm_shared.h \
		bpf/kcm_health.h $(OUTPUT)/kcm.skel.h $(OUTPUT)/kcm_health.skel.h | $(OUTPUT)/lib
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(OUTPUT)/libkcm.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(OUTPUT)/libkcm.so: $(LIB_OBJS) user/lib/libkcm.map
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,libkcm.so.$(SOVERSION) -Wl,--version-script=user/lib/libkcm.map \
		-o $@ $(LIB_OBJS) $(LIBBPF_LIBS) -lpthread

$(OUTPUT)/loader/%.o: user/loader/%.c $(wildcard user/loader/*.h) $(PUBLIC_HEADERS) \
		$(wildcard bpf/*.h) $(SKELS) | $(OUTPUT)/loader
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -Iuser/loader -DKCM_VERSION='"$(VERSION)"' -c $< -o $@

$(OUTPUT)/kcm-loader: $(LOADER_OBJS) $(OUTPUT)/libkcm.a
	$(call msg,LINK,$@)
	$(Q)$(CC) -o $@ $^ $(LIBBPF_LIBS) -lpthread

PROG_DEPS := tests/progs.h tests/harness.h $(OUTPUT)/libkcm.a $(PUBLIC_HEADERS) $(SKELS)
define prog_rule
$(OUTPUT)/tests/%: tests/$(1)/%.c $(PROG_DEPS) | $(OUTPUT)/tests
	$$(call msg,CC,$$@)
	$$(Q)$$(CC) $$(ALL_CFLAGS) -Itests -o $$@ $$< $$(PROG_LDFLAGS) $(OUTPUT)/libkcm.a \
		$$(LIBBPF_LIBS) -lpthread
endef
$(foreach d,api tools bench,$(eval $(call prog_rule,$(d))))

# flow_check refers to these weakly (it also runs on a library without them): a weak
# reference alone does not pull an archive member in, so ask the linker for them.
$(OUTPUT)/tests/flow_check: PROG_LDFLAGS := -Wl,-u,kcm_mux_flow -Wl,-u,kcm_unread

$(BENCH): $(BENCH_SRCS) tests/bench/rx/bench.h $(OUTPUT)/libkcm.a $(PUBLIC_HEADERS) \
		| $(OUTPUT)/tests/bench
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/bench/rx -o $@ $(BENCH_SRCS) $(OUTPUT)/libkcm.a $(LIBBPF_LIBS) \
		-lpthread

$(OUTPUT)/tests/unit_%: tests/unit/%.c tests/harness.h $(OUTPUT)/libkcm.a | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -Itests -Iuser/loader -o $@ $< $(UNIT_OBJS) $(OUTPUT)/libkcm.a \
		$(LIBBPF_LIBS) -lpthread

# unit tests of the loader's pure parts link the objects they test
$(OUTPUT)/tests/unit_pool_state: UNIT_OBJS := $(OUTPUT)/loader/pool_state.o
$(OUTPUT)/tests/unit_pool_state: $(OUTPUT)/loader/pool_state.o

deps:
	$(Q)scripts/install-deps.sh

test:
	$(Q)scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/run-tests.sh

# The suite on this kernel and on Debian's stock kernels in qemu (docs/kernels.md).
# KERNELS="native 5.10 6.1 6.12" (default), SUITES="traffic api" (default: all),
# REPEAT=5 (the whole matrix 5 times in a row: a rare hang needs many runs).
test-kernels:
	$(Q)scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/test-kernels.sh

demo:
	$(Q)scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

# Receive and transmit benchmarks: docs/benchmarks.md and docs/bench/*.png.
# QUICK=1: every variant once at small counts; the report goes to build/bench/quick/.
bench:
	$(Q)scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench.sh $(if $(filter-out 0,$(QUICK)),--quick)

# Transmit only, written to docs/transmit.md.
bench-tx:
	$(Q)scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench-tx.sh

# kcm-bpf against the kernel's own AF_KCM, in Debian's 6.1 kernel under qemu
bench-afkcm:
	$(Q)scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench-afkcm.sh

install: all
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
		$(DESTDIR)$(PREFIX)/include/kcm-bpf $(DESTDIR)$(PREFIX)/lib/kcm-bpf/parsers \
		$(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man3 \
		$(DESTDIR)$(PREFIX)/share/doc/kcm-bpf $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	$(Q)install -m 0755 $(OUTPUT)/kcm-loader $(DESTDIR)$(PREFIX)/bin/
	$(Q)install -m 0644 $(OUTPUT)/libkcm.a $(DESTDIR)$(PREFIX)/lib/
	$(Q)install -m 0755 $(OUTPUT)/libkcm.so $(DESTDIR)$(PREFIX)/lib/libkcm.so.$(VERSION)
	$(Q)ln -sf libkcm.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libkcm.so.$(SOVERSION)
	$(Q)ln -sf libkcm.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libkcm.so
	$(Q)install -m 0644 $(PUBLIC_HEADERS) $(DESTDIR)$(PREFIX)/include/
	$(Q)install -m 0644 $(BPF_OBJS) $(DESTDIR)$(PREFIX)/lib/kcm-bpf/
	$(Q)install -m 0644 $(PARSER_OBJS) $(DESTDIR)$(PREFIX)/lib/kcm-bpf/parsers/
	$(Q)install -m 0644 $(SDK_HEADERS) $(DESTDIR)$(PREFIX)/include/kcm-bpf/
	$(Q)install -m 0644 docs/kcm-loader.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	$(Q)install -m 0644 docs/libkcm.3 $(DESTDIR)$(PREFIX)/share/man/man3/
	$(Q)install -m 0644 docs/*.md $(DESTDIR)$(PREFIX)/share/doc/kcm-bpf/
	$(Q)install -m 0644 user/loader/kcm-loader.bash \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/kcm-loader
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' user/libkcm.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/libkcm.pc

# Static binaries for the sidecar image (Debian's libbpf.a, libelf.a and libz.a): kcm-loader
# (the data plane and the health programs are inside it, as skeletons; parsers are files)
# and kcm-example, the example application of docs/examples/kcm-pod.yaml.
STATIC := $(OUTPUT)/static/kcm-loader $(OUTPUT)/static/kcm-example
STATIC_LIBS := -l:libbpf.a -l:libelf.a -l:libz.a -lpthread

static: $(STATIC)

$(OUTPUT)/static:
	$(Q)mkdir -p $@

# glibc warns that a static binary's getaddrinfo needs its shared NSS modules: both take
# numeric addresses only, so that is left out of the log.
$(OUTPUT)/static/kcm-loader: $(LOADER_OBJS) $(OUTPUT)/libkcm.a | $(OUTPUT)/static
	$(call msg,LINK,$@)
	$(Q)$(CC) -static -o $@ $(LOADER_OBJS) $(OUTPUT)/libkcm.a $(STATIC_LIBS) 2>&1 \
		| grep -vE "statically linked applications requires|in function" >&2 || true
	$(Q)test -x $@

$(OUTPUT)/static/kcm-example: docs/examples/kcm_example.c $(OUTPUT)/libkcm.a $(PUBLIC_HEADERS) \
		| $(OUTPUT)/static
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -static -o $@ $< $(OUTPUT)/libkcm.a $(STATIC_LIBS) 2>&1 \
		| grep -vE "statically linked applications requires|in function" >&2 || true
	$(Q)test -x $@

# The sidecar image, FROM scratch (nothing can be pulled here).
image: static $(PARSER_OBJS)
	$(Q)scripts/build-image.sh

clean:
	$(call msg,CLEAN,$(OUTPUT))
	$(Q)rm -rf $(OUTPUT)
