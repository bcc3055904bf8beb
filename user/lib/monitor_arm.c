// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Arming a mux's transports for the health callbacks: through a copy of the owner's fd
 * (pidfd_getfd), a setsockopt() of the private option that monitor's cgroup/setsockopt
 * program turns into bpf_setsockopt(TCP_BPF_SOCK_OPS_CB_FLAGS); disarming the same way
 * before the programs go.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcm_health.h"
#include "monitor_state.h"

/* Set @flags on transport @cookie held by @pid as @fd (0 disarms). */
static int arm_one(pid_t pid, int fd, __u64 cookie, __u32 flags)
{
	int copy, err = 0;

	copy = kcm_process_fd(pid, fd);
	if (copy < 0)
		return -errno;
	if (kcm_sock_cookie(copy) != cookie)
		err = -ESTALE; /* the owner reused the fd number */
	if (!err)
		err = kcm_health_arm_fd(copy, flags);
	/* never keep it: our copy would keep the connection open after its owner closes it */
	close(copy);
	return err;
}

static void armed(struct kcm_monitor *m, const struct kcm_monitored *t, pid_t pid, int fd)
{
	struct kcm_monitor_event e = { .type = KCM_MON_ARMED, .cookie = t->cookie,
				       .slot = t->slot, .pid = pid, .fd = fd };

	if (!m->armed[t->slot])
		m->narmed++;
	m->armed[t->slot] = t->cookie;
	m->refused[t->slot] = 0;
	e.time_ns = kcm_monitor_now_ns();
	kcm_monitor_deliver(m, &e);
}

static const struct kcm_monitored *seen_cookie(struct kcm_monitor *m, __u64 cookie)
{
	for (unsigned int i = 0; i < m->nseen; i++)
		if (m->seen[i].cookie == cookie)
			return &m->seen[i];
	return NULL;
}

/*
 * arm_pid: every socket of that process that is a transport of the mux and not armed
 * yet (its recorded owner may have passed it on and exited). @flags 0 disarms them all.
 */
static void arm_from_pid(struct kcm_monitor *m, __u32 flags)
{
	char dir[64], link[64], path[320];
	const struct kcm_monitored *t;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", m->arm_pid);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		ssize_t n;
		int copy;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0 || strncmp(link, "socket:", 7))
			continue;
		copy = kcm_process_fd(m->arm_pid, atoi(de->d_name));
		if (copy < 0)
			continue;
		t = seen_cookie(m, kcm_sock_cookie(copy));
		if (t && (!flags || m->armed[t->slot] != t->cookie) &&
		    !kcm_health_arm_fd(copy, flags) && flags)
			armed(m, t, m->arm_pid, atoi(de->d_name));
		close(copy);
	}
	closedir(d);
}

static int note_attached(const struct kcm_transport_status *t, void *ctx)
{
	struct kcm_monitor *m = ctx;

	if (t->state == KCM_SLOT_ATTACHED && t->slot < KCM_MAX_TRANSPORTS &&
	    m->nseen < KCM_MAX_TRANSPORTS)
		m->seen[m->nseen++] = (struct kcm_monitored){ .cookie = t->cookie,
			.slot = t->slot, .pid = t->pid, .fd = t->fd };
	return 0;
}

/* Arm every attached transport not armed yet; a failure is reported once per transport. */
void kcm_monitor_arm_new(struct kcm_monitor *m)
{
	m->nseen = 0;
	kcm_transport_foreach(m->mux, note_attached, m);
	for (unsigned int i = 0; i < m->nseen; i++) {
		const struct kcm_monitored *t = &m->seen[i];
		struct kcm_monitor_event e = { .type = KCM_MON_ARM_FAILED };
		int err;

		if (m->armed[t->slot] == t->cookie || m->refused[t->slot] == t->cookie)
			continue;
		err = arm_one(t->pid, t->fd, t->cookie, KCM_HEALTH_CB_ALL);
		if (!err) {
			armed(m, t, t->pid, t->fd);
			continue;
		}
		m->refused[t->slot] = t->cookie;
		if (m->arm_pid)
			continue; /* arm_from_pid() may still find it */
		e.time_ns = kcm_monitor_now_ns();
		e.cookie = t->cookie;
		e.slot = t->slot;
		e.pid = t->pid;
		e.fd = t->fd;
		e.err = -err;
		kcm_monitor_deliver(m, &e);
	}
	if (m->arm_pid)
		arm_from_pid(m, KCM_HEALTH_CB_ALL);
}

/* Turn the callbacks off again on the transports still there (before the programs go). */
void kcm_monitor_disarm_all(struct kcm_monitor *m)
{
	if (m->arm_pid)
		arm_from_pid(m, 0);
	for (unsigned int i = 0; i < m->nseen && m->narmed; i++) {
		const struct kcm_monitored *t = &m->seen[i];

		if (m->armed[t->slot] == t->cookie)
			arm_one(t->pid, t->fd, t->cookie, 0);
	}
	memset(m->armed, 0, sizeof(m->armed));
	m->narmed = 0;
}
