// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm_check_system(): what this kernel and process allow. Each check does the smallest
 * real thing the feature needs (create the map, load and attach the program, add the
 * socket) rather than reading version numbers or config files, which vendors patch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "internal.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif
#ifndef AF_KCM
#define AF_KCM 41
#endif

struct run {
	kcm_check_fn fn;
	void *ctx;
	int missing;
	bool privileged;	/* bpf() can be tried */
};

static void report(struct run *r, const char *name, enum kcm_check_state state,
		   const char *needed_for, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void report(struct run *r, const char *name, enum kcm_check_state state,
		   const char *needed_for, const char *fix, const char *fmt, ...)
{
	struct kcm_check c = { .name = name, .state = state, .needed_for = needed_for };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c.seen, sizeof(c.seen), fmt, ap);
	va_end(ap);
	c.fix = state == KCM_CHECK_OK || state == KCM_CHECK_INFO ? NULL : fix;
	if (state == KCM_CHECK_MISSING || state == KCM_CHECK_UNKNOWN)
		r->missing++;
	r->fn(&c, r->ctx);
}

/* A check that needs bpf() and could not run it: unknown, not missing. */
static bool unprivileged(struct run *r, const char *name, const char *needed_for)
{
	if (r->privileged)
		return false;
	report(r, name, KCM_CHECK_UNKNOWN, needed_for, "run `kcm-loader check` as root",
	       "not checked: bpf() needs the privileges above");
	return true;
}

static void check_kernel(struct run *r)
{
	struct utsname u;

	if (uname(&u))
		memset(&u, 0, sizeof(u));
	report(r, "kernel", KCM_CHECK_INFO, "everything", NULL, "Linux %s %s", u.release,
	       u.machine);
}

static bool has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

static void check_privileges(struct run *r)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { 0 };
	char lack[96] = "";
	bool bpf, net, perf;

	if (syscall(SYS_capget, &h, d)) {
		report(r, "privileges", KCM_CHECK_UNKNOWN, "loading programs, creating maps",
		       NULL, "capget failed: %s", strerror(errno));
		return;
	}
	/* before 5.8 CAP_SYS_ADMIN stood for CAP_BPF and CAP_PERFMON */
	bpf = has_cap(d, CAP_BPF) || has_cap(d, CAP_SYS_ADMIN);
	perf = has_cap(d, CAP_PERFMON) || has_cap(d, CAP_SYS_ADMIN);
	net = has_cap(d, CAP_NET_ADMIN);
	r->privileged = bpf && net;
	if (!bpf)
		strcat(lack, " CAP_BPF");
	if (!net)
		strcat(lack, " CAP_NET_ADMIN");
	if (!perf)
		strcat(lack, " CAP_PERFMON");
	if (!*lack)
		report(r, "privileges", KCM_CHECK_OK, "loading programs, creating maps", NULL,
		       "CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON are effective");
	else
		report(r, "privileges", KCM_CHECK_MISSING, "loading programs, creating maps",
		       "run as root, or grant these capabilities", "not effective:%s", lack);
}

static void check_bpffs(struct run *r)
{
	static char fix[300];
	const char *fs = kcm_bpffs();
	struct statfs st;

	snprintf(fix, sizeof(fix), "mount -t bpf bpf %s", fs);
	if (statfs(fs, &st))
		report(r, "bpffs", KCM_CHECK_MISSING, "pinned muxes (kcm-loader, sharing)", fix,
		       "%s: %s", fs, strerror(errno));
	else if (st.f_type != BPF_FS_MAGIC)
		report(r, "bpffs", KCM_CHECK_MISSING, "pinned muxes (kcm-loader, sharing)", fix,
		       "%s is not a bpf filesystem (type %#lx)", fs, (unsigned long)st.f_type);
	else
		report(r, "bpffs", KCM_CHECK_OK, "pinned muxes (kcm-loader, sharing)", NULL,
		       "%s is mounted", fs);
}

static void check_btf(struct run *r)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		report(r, "btf", KCM_CHECK_MISSING, "the data plane (CO-RE)",
		       "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
		       "/sys/kernel/btf/vmlinux: %s", strerror(errno));
	else
		report(r, "btf", KCM_CHECK_OK, "the data plane (CO-RE)", NULL,
		       "/sys/kernel/btf/vmlinux is readable");
}

static int sockmap_create(void)
{
	int fd = bpf_map_create(BPF_MAP_TYPE_SOCKMAP, "kcm_check", sizeof(__u32), sizeof(__u32),
				1, NULL);

	return fd < 0 ? -errno : fd;
}

/* A program that returns @ret: enough for the verifier and for attaching. */
static int trivial_prog(enum bpf_prog_type type, int ret)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = ret },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(type, "kcm_check", "GPL", insns, 2, NULL);

	return fd < 0 ? -errno : fd;
}

static void check_sockmap(struct run *r)
{
	const char *what = "receive and transmit (every mux)";
	int fd;

	if (unprivileged(r, "sockmap", what))
		return;
	fd = sockmap_create();
	if (fd < 0) {
		/* with the capabilities effective (checked above), EPERM is not the kernel's
		 * config: a seccomp profile or lockdown refused bpf() */
		report(r, "sockmap", KCM_CHECK_MISSING, what, fd == -EPERM ?
		       "bpf() was refused although the capabilities are effective: a seccomp "
		       "profile (container runtimes' default ones allow bpf() only with "
		       "CAP_SYS_ADMIN: run with seccomp unconfined) or kernel lockdown" :
		       "use a kernel built with CONFIG_BPF_SYSCALL and CONFIG_NET",
		       "failed to create a sockmap: %s", strerror(-fd));
		return;
	}
	close(fd);
	report(r, "sockmap", KCM_CHECK_OK, what, NULL, "a sockmap can be created");
}

/* Attach a trivial program of @type to a fresh sockmap as @attach: 0 or -errno. */
static int try_attach(enum bpf_prog_type type, enum bpf_attach_type attach, int ret)
{
	int map = sockmap_create(), prog, err = 0;

	if (map < 0)
		return map;
	prog = trivial_prog(type, ret);
	if (prog < 0) {
		close(map);
		return prog;
	}
	if (bpf_prog_attach(prog, map, attach, 0))
		err = -errno;
	close(prog);
	close(map);
	return err;
}

static void check_stream_parser(struct run *r)
{
	const char *what = "receive: finding messages and steering them (every mux)";
	int err;

	if (unprivileged(r, "stream-parser", what))
		return;
	err = try_attach(BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_PARSER, 0);
	if (!err)
		report(r, "stream-parser", KCM_CHECK_OK, what, NULL,
		       "an sk_skb stream parser attaches to a sockmap");
	else if (err == -EOPNOTSUPP)
		report(r, "stream-parser", KCM_CHECK_MISSING, what,
		       "use a kernel built with CONFIG_BPF_STREAM_PARSER=y (Azure Linux, "
		       "CBL-Mariner, Flatcar, Photon and Android GKI leave it out)",
		       "the kernel refuses stream parsers: %s (no CONFIG_BPF_STREAM_PARSER)",
		       strerror(-err));
	else
		report(r, "stream-parser", KCM_CHECK_MISSING, what, NULL,
		       "failed to attach an sk_skb stream parser to a sockmap: %s",
		       strerror(-err));
}

static void check_sk_msg(struct run *r)
{
	const char *what = "flow control's brake (every mux)";
	int err;

	if (unprivileged(r, "sk-msg", what))
		return;
	err = try_attach(BPF_PROG_TYPE_SK_MSG, BPF_SK_MSG_VERDICT, SK_PASS);
	if (err)
		report(r, "sk-msg", KCM_CHECK_MISSING, what, NULL,
		       "failed to attach an sk_msg verdict to a sockmap: %s", strerror(-err));
	else
		report(r, "sk-msg", KCM_CHECK_OK, what, NULL,
		       "an sk_msg verdict attaches to a sockmap");
}

/* Add @fd to a fresh sockmap: 0 or -errno. */
static int try_member(int fd)
{
	int map = sockmap_create(), err = 0;
	__u32 key = 0, val = fd;

	if (map < 0)
		return map;
	if (bpf_map_update_elem(map, &key, &val, BPF_ANY))
		err = -errno;
	close(map);
	return err;
}

static void check_unix_members(struct run *r)
{
	const char *what = "KCM sockets of length-prefix muxes and parser muxes with a splitter";
	int sv[2], err;

	if (unprivileged(r, "unix-members", what))
		return;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) {
		report(r, "unix-members", KCM_CHECK_UNKNOWN, what, NULL,
		       "failed to create an AF_UNIX socket pair: %s", strerror(errno));
		return;
	}
	err = try_member(sv[0]);
	close(sv[0]);
	close(sv[1]);
	if (err)
		report(r, "unix-members", KCM_CHECK_MISSING, what,
		       "use Linux 5.15 or later (AF_UNIX sockets joined sockmaps in 5.15)",
		       "the kernel refuses an AF_UNIX datagram socket in a sockmap: %s",
		       strerror(-err));
	else
		report(r, "unix-members", KCM_CHECK_OK, what, NULL,
		       "an AF_UNIX datagram socket joins a sockmap");
}

static void check_udp_members(struct run *r)
{
	const char *what = "transports with parsers of their own (attach --prog), and parser "
			   "muxes without a splitter, which otherwise split by test-running the "
			   "parser";
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd, err;

	if (unprivileged(r, "udp-members", what))
		return;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		report(r, "udp-members", KCM_CHECK_MISSING, what,
		       "bring the loopback interface up: ip link set lo up",
		       "failed to bind a UDP socket to 127.0.0.1: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	err = try_member(fd);
	close(fd);
	if (err)
		report(r, "udp-members", KCM_CHECK_MISSING, what,
		       "use a splitter (kcm-loader create --frame NAME, or --prog OBJ --split NAME)",
		       "the kernel refuses a UDP socket in a sockmap: %s", strerror(-err));
	else if (!kcm_kernel_udp_inq())
		report(r, "udp-members", KCM_CHECK_MISSING, what,
		       "give each mux one parser; --prog OBJ alone then splits with OBJ "
		       "(--split prog), or use a shipped splitter (--frame NAME)",
		       "no FIONREAD for UDP sockets in a sockmap (no udp_bpf_ioctl in the "
		       "kernel's BTF): readers could not tell messages apart");
	else
		report(r, "udp-members", KCM_CHECK_OK, what, NULL,
		       "a loopback UDP socket joins a sockmap and FIONREAD counts its messages");
}

static void check_data_plane(struct run *r)
{
	const char *what = "every mux (kcm-loader create, kcm_mux_create)";
	struct kcm_mux_opts o = { .sz = sizeof(o) };
	struct kcm_mux *mux;

	if (unprivileged(r, "data-plane", what))
		return;
	kcm_framing_parse("u32be+4", &o.framing);
	mux = kcm_mux_create(&o);
	if (!mux) {
		report(r, "data-plane", KCM_CHECK_MISSING, what,
		       "run kcm-loader -v create to see the verifier's and libbpf's messages",
		       "%s", kcm_last_error());
		return;
	}
	kcm_mux_destroy(mux);
	report(r, "data-plane", KCM_CHECK_OK, what, NULL,
	       "kcm.bpf.o loads and a private mux works");
}

static void check_monitor(struct run *r)
{
	const char *what = "kcm-loader monitor (sock_ops on cgroup v2)";
	char where[200];
	int fd;

	if (kcm_cgroup2_root(where, sizeof(where))) {
		report(r, "monitor", KCM_CHECK_MISSING, what,
		       "mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with cgroup v2)",
		       "no cgroup v2 is mounted");
		return;
	}
	if (unprivileged(r, "monitor", what))
		return;
	fd = trivial_prog(BPF_PROG_TYPE_SOCK_OPS, 1);
	if (fd < 0) {
		report(r, "monitor", KCM_CHECK_MISSING, what, NULL,
		       "failed to load a sock_ops program: %s", strerror(-fd));
		return;
	}
	close(fd);
	report(r, "monitor", KCM_CHECK_OK, what, NULL,
	       "sock_ops programs load; cgroup v2 at %s", where);
}

/* Whether the kernel's own KCM is there too: reported for comparison only. */
static void check_af_kcm(struct run *r)
{
	int fd = socket(AF_KCM, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0) {
		close(fd);
		report(r, "af-kcm", KCM_CHECK_INFO, "nothing (the kernel's own KCM)", NULL,
		       "AF_KCM is available on this kernel too");
	} else {
		report(r, "af-kcm", KCM_CHECK_INFO, "nothing (the kernel's own KCM)", NULL,
		       "no AF_KCM (%s): kcm-bpf is the way to KCM here", strerror(errno));
	}
}

/*
 * monitor's two paths: @probe fills what it saw and returns 0, -EOPNOTSUPP when the
 * kernel lacks the feature (@fix says what to do), or another -errno.
 */
static void check_health(struct run *r, const char *name, const char *needed_for,
			 int (*probe)(char *seen, size_t len), const char *fix)
{
	char seen[sizeof(((struct kcm_check *)0)->seen)];
	int err = probe(seen, sizeof(seen));
	enum kcm_check_state state = err ? KCM_CHECK_MISSING : KCM_CHECK_OK;

	if (err == -EPERM || err == -EACCES)
		state = KCM_CHECK_UNKNOWN;
	report(r, name, state, needed_for, err == -EOPNOTSUPP ? fix :
	       "run `kcm-loader check` as root, with cgroup v2 mounted", "%s", seen);
}

int kcm_check_system(kcm_check_fn fn, void *ctx)
{
	struct run r = { .fn = fn, .ctx = ctx };

	if (!fn)
		return -EINVAL;
	check_kernel(&r);
	check_privileges(&r);
	check_bpffs(&r);
	check_btf(&r);
	check_sockmap(&r);
	check_stream_parser(&r);
	check_sk_msg(&r);
	check_unix_members(&r);
	check_udp_members(&r);
	check_data_plane(&r);
	check_monitor(&r);
	check_af_kcm(&r);
	check_health(&r, "monitor-arm", "kcm-loader monitor's sock_ops path (without it, "
		     "monitor uses tracepoints, machine-wide)", kcm_health_check_arm,
		     "nothing to do: monitor takes its tracing path (or use Linux 6.12)");
	check_health(&r, "monitor-trace", "kcm-loader monitor where monitor-arm is missing "
		     "(and --trace)", kcm_health_check_trace,
		     "use Linux 5.19 or later for kcm-loader monitor without monitor-arm");
	return r.missing;
}
