// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Statistics kept in the mux's own maps: the data plane counts what it receives and
 * parses, libkcm what it sends, attaches and loses. The maps are mmapped, so every
 * process using a pinned mux adds to the same counters without a system call, and
 * `bpftool map dump` and `kcm-loader stats` read them.
 */
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "internal.h"

#define ADD(field, v) __atomic_fetch_add(&(field), (v), __ATOMIC_RELAXED)

static size_t map_bytes(size_t value_size, size_t entries)
{
	size_t page = sysconf(_SC_PAGESIZE), bytes = ((value_size + 7) & ~7ul) * entries;

	return (bytes + page - 1) / page * page;
}

static void *map_mmap(int fd, size_t value_size, size_t entries)
{
	void *p = mmap(NULL, map_bytes(value_size, entries), PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

int kcm_stats_map(struct kcm_mux *mux)
{
	mux->tstats = map_mmap(mux->map_fd[KCM_MAP_TRANSPORT_STATS],
			       sizeof(struct kcm_transport_stats), KCM_MAX_TRANSPORTS);
	mux->mstats = map_mmap(mux->map_fd[KCM_MAP_MEMBER_STATS], sizeof(struct kcm_member_stats),
			       KCM_MAX_MEMBERS);
	mux->xstats = map_mmap(mux->map_fd[KCM_MAP_MUX_STATS], sizeof(struct kcm_mux_stats), 1);
	if (mux->tstats && mux->mstats && mux->xstats)
		return 0;
	return kcm_fail(-errno, "failed to map the statistics maps of the mux");
}

void kcm_stats_unmap(struct kcm_mux *mux)
{
	if (mux->tstats)
		munmap(mux->tstats, map_bytes(sizeof(*mux->tstats), KCM_MAX_TRANSPORTS));
	if (mux->mstats)
		munmap(mux->mstats, map_bytes(sizeof(*mux->mstats), KCM_MAX_MEMBERS));
	if (mux->xstats)
		munmap(mux->xstats, map_bytes(sizeof(*mux->xstats), 1));
	mux->tstats = NULL;
	mux->mstats = NULL;
	mux->xstats = NULL;
}

/* Bytes @fd has received in all (TCP_INFO) and not yet read: -1 when unknown. */
static int64_t received_bytes(int fd, int *unread)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return -1;
	if (unread && ioctl(fd, SIOCINQ, unread))
		return -1;
	/* a FIN received counts one byte of sequence space, and is no data */
	switch (ti.tcpi_state) {
	case BPF_TCP_CLOSE_WAIT:
	case BPF_TCP_LAST_ACK:
	case BPF_TCP_CLOSING:
	case BPF_TCP_TIME_WAIT:
		return ti.tcpi_bytes_received ? ti.tcpi_bytes_received - 1 : 0;
	}
	return ti.tcpi_bytes_received;
}

/* A new transport in @slot: fresh counters, and the data plane learns its slot. */
int kcm_stats_transport_start(struct kcm_mux *mux, uint32_t slot, uint64_t cookie, int fd)
{
	struct kcm_transport_stats *ts = &mux->tstats[slot];
	int64_t got, again;
	int unread = 0;

	memset(ts, 0, sizeof(*ts));
	/* what the owner read itself is not ours to deliver: received - still queued */
	for (int i = 0; i < 4; i++) {
		got = received_bytes(fd, &unread);
		again = received_bytes(fd, NULL);
		if (got >= 0 && got == again) {
			ts->base_bytes = got - unread;
			break;
		}
	}
	__atomic_store_n(&ts->cookie, cookie, __ATOMIC_RELEASE);
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_TRANSPORT_SLOT], &cookie, &slot, BPF_ANY))
		return -errno;
	ADD(mux->xstats->attaches, 1);
	return 0;
}

/* Bytes that arrived on the transport and were not passed on; -1 when unknown. */
int64_t kcm_stats_pending(struct kcm_mux *mux, uint32_t slot, int fd)
{
	struct kcm_transport_stats *ts = &mux->tstats[slot];
	int64_t got = received_bytes(fd, NULL), done;

	if (got < 0)
		return -1;
	done = __atomic_load_n(&ts->base_bytes, __ATOMIC_RELAXED) +
	       __atomic_load_n(&ts->consumed_bytes, __ATOMIC_ACQUIRE);
	return got > done ? got - done : 0;
}

/*
 * Count what the transport was carrying as lost, once: whoever sees the failure first
 * (the health check or the unattach) takes it. The bytes it received and never passed on
 * are lost; they hold at least one message (more when strparser stopped before
 * whole ones that followed). Without an fd, the message the parser was assembling.
 * Returns the messages counted.
 */
uint64_t kcm_stats_lost(struct kcm_mux *mux, uint32_t slot, uint64_t cookie, int fd,
			uint64_t *bytes)
{
	struct kcm_transport_stats *ts = &mux->tstats[slot];
	int64_t pending;
	uint64_t msgs, b;

	*bytes = 0;
	if (__atomic_load_n(&ts->cookie, __ATOMIC_ACQUIRE) != cookie ||
	    (__atomic_fetch_or(&ts->accounted, LOSSES_COUNTED, __ATOMIC_ACQ_REL) & LOSSES_COUNTED))
		return 0;
	pending = kcm_stats_pending(mux, slot, fd);
	if (pending >= 0) {
		b = pending;
		msgs = b ? 1 : 0;
	} else {
		msgs = __atomic_load_n(&ts->partial, __ATOMIC_ACQUIRE);
		b = msgs ? __atomic_load_n(&ts->partial_bytes, __ATOMIC_RELAXED) : 0;
	}
	if (!msgs)
		return 0;
	ADD(ts->lost_msgs, msgs);
	ADD(ts->lost_bytes, b);
	ADD(mux->xstats->lost_msgs, msgs);
	ADD(mux->xstats->lost_bytes, b);
	*bytes = b;
	return msgs;
}

/* The transport in @slot left the mux (its map entry is gone already); @fd may be -1. */
void kcm_stats_transport_end(struct kcm_mux *mux, uint32_t slot, uint64_t cookie, int fd)
{
	uint64_t bytes;

	kcm_stats_lost(mux, slot, cookie, fd, &bytes);
	bpf_map_delete_elem(mux->map_fd[KCM_MAP_TRANSPORT_SLOT], &cookie);
	ADD(mux->xstats->unattaches, 1);
}

void kcm_stats_member_start(struct kcm_mux *mux, uint32_t slot, uint64_t cookie)
{
	struct kcm_member_stats *ms = &mux->mstats[slot];

	memset(ms, 0, sizeof(*ms));
	__atomic_store_n(&ms->cookie, cookie, __ATOMIC_RELEASE);
}

/* @msgs messages of @bytes left on transport @tslot, sent by member @mslot (-1: none). */
void kcm_stats_tx(struct kcm_mux *mux, uint32_t tslot, int mslot, unsigned int msgs, size_t bytes)
{
	ADD(mux->tstats[tslot].tx_msgs, msgs);
	ADD(mux->tstats[tslot].tx_bytes, bytes);
	if (mslot >= 0 && mslot < KCM_MAX_MEMBERS) {
		ADD(mux->mstats[mslot].tx_msgs, msgs);
		ADD(mux->mstats[mslot].tx_bytes, bytes);
	}
	ADD(mux->xstats->tx_msgs, msgs);
	ADD(mux->xstats->tx_bytes, bytes);
}

void kcm_stats_tx_error(struct kcm_mux *mux)
{
	ADD(mux->xstats->tx_errors, 1);
}

void kcm_stats_requeued(struct kcm_mux *mux, uint32_t mslot, unsigned int msgs)
{
	if (mslot < KCM_MAX_MEMBERS)
		ADD(mux->mstats[mslot].requeued_msgs, msgs);
}
