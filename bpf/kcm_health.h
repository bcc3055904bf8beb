/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Constants shared by the health programs (kcm_health.bpf.c) and kcm-loader monitor. */
#ifndef KCM_HEALTH_H
#define KCM_HEALTH_H

/*
 * setsockopt(fd, SOL_TCP, KCM_HEALTH_ARM, &flags, sizeof(__u32)) arms the health callbacks
 * of the socket behind @fd: the cgroup/setsockopt program catches this private option name
 * ('K' 'C'), sets TCP_BPF_SOCK_OPS_CB_FLAGS on the socket and keeps the kernel from seeing
 * the option. @flags is a mask of KCM_HEALTH_CB_ALL; 0 disarms. Without the program
 * attached the kernel answers ENOPROTOOPT.
 */
#define KCM_HEALTH_ARM 0x4b43
/* BPF_SOCK_OPS_{RTO,RETRANS,STATE,RTT}_CB_FLAG */
#define KCM_HEALTH_CB_ALL 0xf

#endif /* KCM_HEALTH_H */
