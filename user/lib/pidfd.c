// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Another process's file descriptor, through pidfd_open() and pidfd_getfd(). */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kcm.h"
#include "pidfd.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

int kcm_pidfd_getfd(pid_t pid, int fd)
{
	int pidfd, copy, err;

	if (pid == getpid()) {
		copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		return copy < 0 ? -errno : copy;
	}
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	copy = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	err = errno;
	close(pidfd);
	return copy < 0 ? -err : copy;
}

int kcm_process_fd(pid_t pid, int fd)
{
	int copy = kcm_pidfd_getfd(pid, fd);

	if (copy < 0) {
		errno = -copy;
		return -1;
	}
	return copy;
}
