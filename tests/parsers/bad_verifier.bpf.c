// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Reads skb->data with no check against data_end: the verifier rejects the load. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sk_skb/stream_parser")
int unchecked_read(struct __sk_buff *skb)
{
	__u8 *data = (__u8 *)(long)skb->data;

	return data[0] + 4;
}

char _license[] SEC("license") = "Dual BSD/GPL";
