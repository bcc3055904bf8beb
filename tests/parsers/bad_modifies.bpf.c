// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Pulls the packet into the linear area to read it directly. A stream parser must not
 * change the skb strparser is assembling: the loader must refuse this one.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("sk_skb/stream_parser")
int pull_then_read(struct __sk_buff *skb)
{
	__u8 *data, *end;

	if (bpf_skb_pull_data(skb, 4))
		return 0;
	data = (__u8 *)(long)skb->data;
	end = (__u8 *)(long)skb->data_end;
	if (data + 4 > end)
		return 0;
	return bpf_ntohl(*(__u32 *)data) + 4;
}

char _license[] SEC("license") = "Dual BSD/GPL";
