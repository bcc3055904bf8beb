// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * An AF_KCM parser as kcm.rst has it: a socket filter that reads the length with
 * load_word (BPF_LD_ABS) at offset 0. sockmap cannot run it; the loader must say how
 * to port it to the SDK.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

SEC("socket_kcm")
int kcm_thrift(struct __sk_buff *skb)
{
	return load_word(skb, 0) + 4;
}

char _license[] SEC("license") = "Dual BSD/GPL";
