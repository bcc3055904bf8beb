// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A verdict and no SEC("sk_skb/stream_parser"): the loader must say the parser is missing. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sk_skb/stream_verdict")
int only_verdict(struct __sk_buff *skb)
{
	return SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
