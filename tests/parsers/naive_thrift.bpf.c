// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The Thrift parser as kcm.rst writes it for AF_KCM, ported to sockmap without the SDK:
 * it reads the header at skb offset 0. strparser hands over the whole segment with the
 * message at strp_msg(skb)->offset, so with several messages in one segment every call
 * reads the first header (KERNEL-NOTES.md). Kept to show tests/bats/parsers.bats failing.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("sk_skb/stream_parser")
int naive_thrift(struct __sk_buff *skb)
{
	__u32 size;

	if (bpf_skb_load_bytes(skb, 0, &size, sizeof(size)))
		return 0;
	return bpf_ntohl(size) + 4;
}

char _license[] SEC("license") = "Dual BSD/GPL";
