// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What the running kernel has, where the library must choose (read from its BTF). */
#include <stdlib.h>
#include <string.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "internal.h"

/*
 * Whether FIONREAD on a UDP socket in a sockmap counts what the psock queued for it
 * (udp_bpf_ioctl). Readers of muxes that deliver one message per redirect learn each
 * message's length from it; without it they see 0 and a recv() merges messages. Linux
 * 6.1 lacks it. Checked in the kernel's BTF, once.
 */
bool kcm_kernel_udp_inq(void)
{
	static int known = -1;
	struct btf *btf;

	if (known >= 0)
		return known;
	btf = btf__load_vmlinux_btf();
	if (!btf)
		return true; /* no BTF: the data plane would not load anyway */
	known = btf__find_by_name_kind(btf, "udp_bpf_ioctl", BTF_KIND_FUNC) >= 0;
	btf__free(btf);
	return known;
}

/*
 * Whether sk_skb programs may call bpf_loop (Linux 5.17). The parser scans a batch with
 * it where it can: the verifier checks its callback once, where a bounded loop of 1024
 * iterations is walked one iteration at a time (about 1 s of CPU on 6.1 per mux).
 * KCM_PARSER_LOOP=bounded takes the bounded loop anyway (the suites test both).
 */
bool kcm_kernel_bpf_loop(void)
{
	static int known = -1;
	const char *env;

	if (known >= 0)
		return known;
	env = getenv("KCM_PARSER_LOOP");
	if (env && !strcmp(env, "bounded"))
		known = 0;
	else
		known = libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_SKB, BPF_FUNC_loop, NULL) == 1;
	return known;
}
