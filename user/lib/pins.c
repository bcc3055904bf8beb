// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* bpffs: mounting it, the kcm folder, its lock, and pin paths. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "internal.h"

const char *const kcm_map_names[KCM_MAP_COUNT] = {
	[KCM_MAP_TRANSPORTS] = "transports",
	[KCM_MAP_GROUP] = "group",
	[KCM_MAP_STEER] = "steer",
	[KCM_MAP_COUNTERS] = "counters",
	[KCM_MAP_MEMBER_COUNTERS] = "member_counters",
	[KCM_MAP_CONFIG] = "config",
	[KCM_MAP_TRANSPORT_INFO] = "transport_info",
	[KCM_MAP_MEMBER_INFO] = "member_info",
	[KCM_MAP_PARSERS] = "parsers",
	[KCM_MAP_TRANSPORT_SLOT] = "transport_slot",
	[KCM_MAP_TRANSPORT_STATS] = "transport_stats",
	[KCM_MAP_MEMBER_STATS] = "member_stats",
	[KCM_MAP_MUX_STATS] = "mux_stats",
	[KCM_MAP_HEALTH_CFG] = "health_cfg",
	[KCM_MAP_EVENTS] = "events",
	[KCM_MAP_CREDITS] = "credits",
	[KCM_MAP_FLOW] = "flow",
	[KCM_MAP_BRAKE_TARGETS] = "brake_targets",
	[KCM_MAP_BRAKE_SOURCE] = "brake_source",
};

const char *const kcm_prog_names[KCM_PROG_COUNT] = {
	[KCM_PROG_PARSER] = "prog_parser",
	[KCM_PROG_VERDICT] = "prog_verdict",
	[KCM_PROG_REQUEUE] = "prog_requeue",
	[KCM_PROG_BRAKE] = "prog_brake",
};

int kcm_name_check(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n >= KCM_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return -EINVAL;
	}
	return 0;
}

static char bpffs_dir[256], pin_root_dir[300];
static pthread_once_t dirs_once = PTHREAD_ONCE_INIT;

/* $KCM_BPFFS, read once: threads may ask first at the same time */
static void dirs_init(void)
{
	const char *env = getenv("KCM_BPFFS");

	snprintf(bpffs_dir, sizeof(bpffs_dir), "%s",
		 env && env[0] == '/' ? env : KCM_BPFFS_DEFAULT);
	snprintf(pin_root_dir, sizeof(pin_root_dir), "%s/kcm", bpffs_dir);
}

const char *kcm_bpffs(void)
{
	pthread_once(&dirs_once, dirs_init);
	return bpffs_dir;
}

const char *kcm_pin_root(void)
{
	pthread_once(&dirs_once, dirs_init);
	return pin_root_dir;
}

int kcm_bpffs_prepare(bool may_mount)
{
	struct statfs st;

	if (statfs(kcm_bpffs(), &st) || st.f_type != BPF_FS_MAGIC) {
		if (!may_mount)
			return kcm_fail(-ENODEV, "no bpf filesystem at %s (mount it with `mount -t "
					"bpf bpf %s`; kcm-loader create does)", kcm_bpffs(),
					kcm_bpffs());
		if (mkdir(kcm_bpffs(), 0700) && errno != EEXIST)
			return -errno;
		if (mount("bpf", kcm_bpffs(), "bpf", 0, "mode=0700"))
			return -errno;
	}
	if (mkdir(kcm_pin_root(), 0700) && errno != EEXIST)
		return -errno;
	/* Only root may write pins: a writable sockmap lets anyone steal messages. */
	if (chmod(kcm_pin_root(), 0700))
		return -errno;
	return 0;
}

int kcm_cgroup2_root(char *buf, size_t len)
{
	FILE *f = setmntent("/proc/mounts", "r");
	struct mntent *m;
	int err = -ENOENT;

	if (!f)
		return -errno;
	while ((m = getmntent(f)))
		if (!strcmp(m->mnt_type, "cgroup2")) {
			snprintf(buf, len, "%s", m->mnt_dir);
			err = 0;
			break;
		}
	endmntent(f);
	return err;
}

/*
 * The lock is the folder itself. The last unpin removes the folder, so a waiter may
 * get the lock of a folder that is gone: it then starts again on the new one.
 */
int kcm_pins_lock(bool may_mount)
{
	struct stat held, now;
	int fd, err;

	for (int tries = 0; tries < 100; tries++) {
		err = kcm_bpffs_prepare(may_mount);
		if (err)
			return err;
		fd = open(kcm_pin_root(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (flock(fd, LOCK_EX)) {
			err = -errno;
			close(fd);
			return err;
		}
		if (!fstat(fd, &held) && !stat(kcm_pin_root(), &now) && held.st_ino == now.st_ino &&
		    held.st_dev == now.st_dev)
			return fd;
		close(fd);
	}
	return -EAGAIN;
}

void kcm_pins_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* drops the flock */
}

void kcm_pins_remove_root(void)
{
	rmdir(kcm_pin_root()); /* only when empty; the caller holds the lock */
}

int kcm_pin_path(char *buf, size_t len, const char *name, const char *file)
{
	int n;

	if (file)
		n = snprintf(buf, len, "%s/%s/%s", kcm_pin_root(), name, file);
	else
		n = snprintf(buf, len, "%s/%s", kcm_pin_root(), name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Everything in the mux's folder, then the folder (and the kcm folder when empty). */
int kcm_mux_unpin(const char *name)
{
	char dir[256], path[512];
	struct dirent *de;
	int err, lock;
	DIR *d;

	err = kcm_name_check(name);
	if (err)
		goto out;
	lock = kcm_pins_lock(false);
	if (lock < 0) {
		err = lock;
		goto out;
	}
	err = kcm_pin_path(dir, sizeof(dir), name, NULL);
	d = err ? NULL : opendir(dir);
	if (!d) {
		err = err ? err : -errno;
		kcm_pins_unlock(lock);
		goto out;
	}
	/* Everything in the folder, not only what this version pins: clean after old runs. */
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) && !err)
			err = -errno;
	}
	closedir(d);
	if (!err && rmdir(dir))
		err = -errno;
	if (!err)
		kcm_pins_remove_root();
	kcm_pins_unlock(lock);
out:
	if (err)
		errno = -err;
	return err ? -1 : 0;
}
