// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The health programs (kcm_health.bpf.c) and what this kernel lets them do: open them
 * (with CONFIG_HZ where no kernel config file exists), the tracing path's programs, and
 * the checks behind check's monitor-arm and monitor-trace lines. monitor.c runs them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "internal.h"

/* Set (or clear, @flags 0) the health callbacks of the socket behind our fd @copy. */
int kcm_health_arm_fd(int copy, __u32 flags)
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
struct kcm_health_bpf *kcm_health_open(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	static char kconfig[32];
	char path[300];
	struct utsname u;

	if (!uname(&u)) {
		snprintf(path, sizeof(path), "/boot/config-%s", u.release);
		if (access(path, R_OK) && access("/proc/config.gz", R_OK)) {
			snprintf(kconfig, sizeof(kconfig), "CONFIG_HZ=%u", kcm_estimate_hz());
			opts.kconfig = kconfig;
		}
	}
	return kcm_health_bpf__open_opts(&opts);
}

/* The health programs of the tracing path (see kcm_health.bpf.c), or NULL at @i's end. */
struct bpf_program *kcm_health_trace_prog(struct kcm_health_bpf *skel, size_t i)
{
	struct bpf_program *progs[] = {
		skel->progs.kcm_health_trace_rtt,
		skel->progs.kcm_health_trace_retrans,
		skel->progs.kcm_health_trace_rto,
		skel->progs.kcm_health_trace_state,
	};

	return i < sizeof(progs) / sizeof(progs[0]) ? progs[i] : NULL;
}

static int arm_supported(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -errno;
	err = kcm_health_arm_fd(fd, 0);
	close(fd);
	return err == -ENOPROTOOPT ? 0 : err; /* the program did not run here: no answer */
}

/* The sock_ops program loads without the setsockopt one: the kernel refuses only that. */
static bool arm_prog_refused(void)
{
	struct kcm_health_bpf *skel = kcm_health_open();
	struct bpf_program *p;
	bool refused;

	if (!skel)
		return false;
	for (size_t i = 0; (p = kcm_health_trace_prog(skel, i)); i++)
		bpf_program__set_autoload(p, false);
	bpf_program__set_autoload(skel->progs.kcm_health_arm, false);
	refused = !kcm_health_bpf__load(skel);
	kcm_health_bpf__destroy(skel);
	return refused;
}

int kcm_health_check_trace(char *seen, size_t len)
{
	struct kcm_health_bpf *skel = kcm_health_open();
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
		for (size_t i = 0; !err && (p = kcm_health_trace_prog(skel, i)); i++) {
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

int kcm_health_check_arm(char *seen, size_t len)
{
	struct kcm_health_bpf *skel = kcm_health_open();
	struct bpf_link *link = NULL;
	struct bpf_program *p;
	char root[PATH_MAX];
	int cg = -1, err;

	for (size_t i = 0; skel && (p = kcm_health_trace_prog(skel, i)); i++)
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
		snprintf(seen, len, "%s", KCM_ARM_UNSUPPORTED);
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
