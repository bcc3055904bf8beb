/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Another process's file descriptor, through pidfd_open() and pidfd_getfd(). */
#ifndef KCM_PIDFD_H
#define KCM_PIDFD_H

#include <sys/types.h>

/* This process's copy of fd @fd of process @pid, or -errno: ESRCH no such process,
 * EBADF it has no such fd, EPERM not allowed (needs CAP_SYS_PTRACE over it). */
int kcm_pidfd_getfd(pid_t pid, int fd);

#endif /* KCM_PIDFD_H */
