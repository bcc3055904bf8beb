// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader monitor's programs: open kcm_health.bpf.c on the mux's own maps, choose the
 * sock_ops path (arming each transport through the private setsockopt option) or the
 * tracing path (kernels that cannot arm), attach through bpf_links, and arm or disarm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kcm_health.h"
#include "kcm_health.skel.h"
#include "loader.h"
#include "monitor.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

/* Set (or clear, @flags 0) the health callbacks of the socket behind our fd @copy. */
static int arm_fd(int copy, __u32 flags)
{
	return setsockopt(copy, IPPROTO_TCP, KCM_HEALTH_ARM, &flags, sizeof(flags)) ? -errno : 0;
}

/*
 * Open the health programs. Their one kconfig extern (CONFIG_HZ, weak) makes libbpf read
 * /boot/config-$(uname -r) or /proc/config.gz, and it fails the load when neither exists
 * (container-optimised hosts and guests often have neither): then give it CONFIG_HZ as
 * the jiffies in /proc/timer_list advance, or 0 ("unknown": events then carry no
 * rto_us).
 */
struct kcm_health_bpf *health_open(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	static char kconfig[32];
	char path[300];
	struct utsname u;

	if (!uname(&u)) {
		snprintf(path, sizeof(path), "/boot/config-%s", u.release);
		if (access(path, R_OK) && access("/proc/config.gz", R_OK)) {
			snprintf(kconfig, sizeof(kconfig), "CONFIG_HZ=%u", monitor_estimate_hz());
			opts.kconfig = kconfig;
		}
	}
	return kcm_health_bpf__open_opts(&opts);
}

static struct bpf_program *trace_prog(struct kcm_health_bpf *skel, size_t i);

static int arm_supported(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -errno;
	err = arm_fd(fd, 0);
	close(fd);
	return err == -ENOPROTOOPT ? 0 : err; /* the program did not run here: no answer */
}

/* The sock_ops program loads without the setsockopt one: the kernel refuses only that. */
static bool arm_prog_refused(void)
{
	struct kcm_health_bpf *skel = health_open();
	struct bpf_program *p;
	bool refused;

	if (!skel)
		return false;
	for (size_t i = 0; (p = trace_prog(skel, i)); i++)
		bpf_program__set_autoload(p, false);
	bpf_program__set_autoload(skel->progs.kcm_health_arm, false);
	refused = !kcm_health_bpf__load(skel);
	kcm_health_bpf__destroy(skel);
	return refused;
}

int monitor_check_trace(char *seen, size_t len)
{
	struct kcm_health_bpf *skel = health_open();
	struct bpf_program *p;
	int err = 0;

	if (skel) {
		bpf_program__set_autoload(skel->progs.kcm_health, false);
		bpf_program__set_autoload(skel->progs.kcm_health_arm, false);
	}
	if (!skel || kcm_health_bpf__load(skel)) {
		err = errno == EPERM || errno == EACCES ? -errno : -EOPNOTSUPP;
		snprintf(seen, len, "the tracing programs do not load: %s (they need BTF "
			 "tracepoints tcp_probe, tcp_retransmit_skb, inet_sock_set_state and "
			 "tcp_cong_state_set, Linux 5.19; kcm-loader -v check shows why)",
			 strerror(errno));
	} else {
		for (size_t i = 0; !err && (p = trace_prog(skel, i)); i++) {
			struct bpf_link *link = bpf_program__attach(p);

			if (!link) {
				err = -errno;
				snprintf(seen, len, "failed to attach %s: %s", bpf_program__name(p),
					 strerror(-err));
			}
			bpf_link__destroy(link);
		}
		if (!err)
			snprintf(seen, len, "the tracing programs load and attach");
	}
	kcm_health_bpf__destroy(skel);
	return err;
}

int monitor_check_arm(char *seen, size_t len)
{
	struct kcm_health_bpf *skel = health_open();
	struct bpf_link *link = NULL;
	struct bpf_program *p;
	char root[PATH_MAX];
	int cg = -1, err;

	for (size_t i = 0; skel && (p = trace_prog(skel, i)); i++)
		bpf_program__set_autoload(p, false);
	if (!skel || kcm_health_bpf__load(skel)) {
		err = -errno;
		kcm_health_bpf__destroy(skel);
		if (!arm_prog_refused()) {
			snprintf(seen, len, "failed to load the health programs: %s (kcm-loader -v "
				 "check shows libbpf's messages)", strerror(-err));
			return err ? err : -EINVAL;
		}
		snprintf(seen, len, "the kernel refuses monitor's cgroup/setsockopt program (its "
			 "verifier knows no bpf_getsockopt() there), so monitor cannot arm "
			 "transports here");
		return -EOPNOTSUPP;
	}
	err = kcm_cgroup2_root(root, sizeof(root));
	if (err) {
		snprintf(seen, len, "no cgroup v2 is mounted");
		goto out;
	}
	cg = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	link = cg < 0 ? NULL : bpf_program__attach_cgroup(skel->progs.kcm_health_arm, cg);
	if (!link) {
		err = -errno;
		snprintf(seen, len, "failed to attach the setsockopt program to %s: %s", root,
			 strerror(-err));
		goto out;
	}
	err = arm_supported();
	if (err == -EINVAL) {
		snprintf(seen, len, "%s", ARM_UNSUPPORTED);
		err = -EOPNOTSUPP; /* the kernel's answer, apart from our own failures */
	} else if (err)
		snprintf(seen, len, "failed to arm a test socket: %s", strerror(-err));
	else
		snprintf(seen, len, "the setsockopt program arms TCP sockets (cgroup v2 at %s)",
			 root);
out:
	bpf_link__destroy(link);
	if (cg >= 0)
		close(cg);
	kcm_health_bpf__destroy(skel);
	return err;
}

static int sock_cookie(int fd, __u64 *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) ? -errno : 0;
}

/* The same for transport @cookie held by @pid as @fd. */
static int arm_one(pid_t pid, int fd, __u64 cookie, __u32 flags)
{
	__u64 got = 0;
	int copy, err;

	copy = kcm_process_fd(pid, fd);
	if (copy < 0)
		return -errno;
	err = sock_cookie(copy, &got);
	if (!err && got != cookie)
		err = -ESTALE; /* the owner reused the fd number */
	if (!err)
		err = arm_fd(copy, flags);
	/* never keep it: our copy would keep the connection open after its owner closes it */
	close(copy);
	return err;
}

/*
 * --arm-pid: every socket of that process that is a transport of the mux and not armed
 * yet (its recorded owner may have passed it on and exited). @flags 0 disarms them all.
 */
static void arm_from_pid(struct monitor *m, __u32 flags)
{
	char dir[64], link[64], path[320];
	struct dirent *de;
	__u64 cookie;
	__u32 slot;
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
		if (!sock_cookie(copy, &cookie) &&
		    !bpf_map_lookup_elem(m->slot_fd, &cookie, &slot) &&
		    slot < KCM_MAX_TRANSPORTS && (!flags || m->armed[slot] != cookie) &&
		    !arm_fd(copy, flags) && flags) {
			if (!m->armed[slot])
				m->narmed++;
			m->armed[slot] = cookie;
			m->refused[slot] = 0;
		}
		close(copy);
	}
	closedir(d);
}

static const char *arm_hint(int err)
{
	switch (err) {
	case -ESRCH:
		return "its owner exited";
	case -EBADF:
	case -ESTALE:
		return "its owner closed it";
	case -EPERM:
		return "pidfd_getfd needs CAP_SYS_PTRACE over its owner";
	case -ENOPROTOOPT:
		return "the setsockopt program did not run for it: is the socket in another "
		       "cgroup tree than --cgroup?";
	default:
		return strerror(-err);
	}
}

/* Arm every attached transport not armed yet (transport_slot: cookie -> slot). */
void arm_new(struct monitor *m)
{
	int slot_fd = m->slot_fd;
	__u64 cookie, next, *prev = NULL;
	struct kcm_transport_info info;
	__u32 slot;
	int err;

	while (!bpf_map_get_next_key(slot_fd, prev, &next)) {
		cookie = next;
		prev = &cookie;
		if (bpf_map_lookup_elem(slot_fd, &cookie, &slot) || slot >= KCM_MAX_TRANSPORTS ||
		    m->armed[slot] == cookie || m->refused[slot] == cookie)
			continue;
		if (bpf_map_lookup_elem(m->info_fd, &slot, &info) ||
		    info.cookie != cookie)
			continue; /* attach still in progress: next scan */
		err = arm_one(info.pid, info.fd, cookie, KCM_HEALTH_CB_ALL);
		if (err && m->arm_pid) {
			m->refused[slot] = cookie; /* arm_from_pid() may still find it */
			continue;
		}
		if (err) {
			m->refused[slot] = cookie;
			fprintf(stderr, "kcm-loader: failed to arm transport %llu (slot %u, pid %u "
				"fd %d) of mux '%s': %s\n", U(cookie), slot, info.pid, info.fd,
				m->name, arm_hint(err));
			continue;
		}
		if (!m->armed[slot])
			m->narmed++;
		m->armed[slot] = cookie;
		if (env.verbose)
			fprintf(stderr, "kcm-loader: armed transport %llu (slot %u)\n", U(cookie),
				slot);
	}
	if (m->arm_pid)
		arm_from_pid(m, KCM_HEALTH_CB_ALL);
}

/* Turn the callbacks off again on the transports still there (before the programs go). */
void disarm_all(struct monitor *m)
{
	struct kcm_transport_info info;

	if (m->arm_pid)
		arm_from_pid(m, 0);
	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS && m->narmed; slot++) {
		if (!m->armed[slot])
			continue;
		if (!bpf_map_lookup_elem(m->info_fd, &slot, &info) &&
		    info.cookie == m->armed[slot])
			arm_one(info.pid, info.fd, info.cookie, 0);
		m->armed[slot] = 0;
		m->narmed--;
	}
}

int reuse_maps(struct monitor *m)
{
	if (kcm_mux_share_maps(m->mux, m->skel->obj, ""))
		return fail("%s (was the mux created by an older kcm-loader? `kcm-loader "
			    "destroy` and create it again)", kcm_last_error());
	return 0;
}

/* The health programs of the tracing path (see kcm_health.bpf.c), or NULL at @i's end. */
static struct bpf_program *trace_prog(struct kcm_health_bpf *skel, size_t i)
{
	struct bpf_program *progs[] = {
		skel->progs.kcm_health_trace_rtt,
		skel->progs.kcm_health_trace_retrans,
		skel->progs.kcm_health_trace_rto,
		skel->progs.kcm_health_trace_state,
	};

	return i < sizeof(progs) / sizeof(progs[0]) ? progs[i] : NULL;
}

/* Load the sock_ops path where transports can be armed, else the tracing path. */
void choose_path(struct monitor *m)
{
	char seen[256];
	struct bpf_program *p;

	m->traced = m->want_trace || monitor_check_arm(seen, sizeof(seen)) == -EOPNOTSUPP;
	bpf_program__set_autoload(m->skel->progs.kcm_health, !m->traced);
	bpf_program__set_autoload(m->skel->progs.kcm_health_arm, !m->traced);
	for (size_t i = 0; (p = trace_prog(m->skel, i)); i++)
		bpf_program__set_autoload(p, m->traced);
	if (m->traced && !m->want_trace)
		fprintf(stderr, "kcm-loader: %s; watching the transports through tracepoints "
			"instead (every TCP socket of the machine passes them)\n", seen);
}

int monitor_attach(struct monitor *m, const char *cgroup)
{
	struct bpf_program *p;
	int err;

	/* the tracing path sees every socket; the cgroup is checked all the same */
	m->cgroup_fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->cgroup_fd < 0)
		return fail("failed to open cgroup %s: %s", cgroup, strerror(errno));
	for (size_t i = 0; m->traced && (p = trace_prog(m->skel, i)); i++) {
		m->trace_link[i] = bpf_program__attach(p);
		if (!m->trace_link[i])
			return fail("failed to attach %s: %s", bpf_program__name(p),
				    strerror(errno));
	}
	if (m->traced)
		return 0;
	m->sockops_link = bpf_program__attach_cgroup(m->skel->progs.kcm_health, m->cgroup_fd);
	if (!m->sockops_link) {
		err = errno;
		return fail("failed to attach sock_ops program to cgroup %s: %s%s", cgroup,
			    strerror(err), err == EPERM ? " (run as root)" : "");
	}
	m->arm_link = bpf_program__attach_cgroup(m->skel->progs.kcm_health_arm, m->cgroup_fd);
	if (!m->arm_link) {
		err = errno;
		return fail("failed to attach setsockopt program to cgroup %s: %s", cgroup,
			    strerror(err));
	}
	return 0;
}

/* Run count and time of the programs that ran: the sock_ops one, or the tracing ones. */
int program_cost(struct monitor *m, struct bpf_prog_info *sum)
{
	struct bpf_program *p = m->traced ? trace_prog(m->skel, 0) : m->skel->progs.kcm_health;

	for (size_t i = 1; p; p = m->traced ? trace_prog(m->skel, i++) : NULL) {
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);

		if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			return -errno;
		sum->id = sum->id ? sum->id : info.id;
		sum->run_cnt += info.run_cnt;
		sum->run_time_ns += info.run_time_ns;
	}
	return 0;
}
