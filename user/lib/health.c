// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Failed transports: tell why (RST, FIN, a timeout, a parse error, a failed send), stop
 * sending on them, count what they were carrying as lost, and with KCM_AUTO_UNATTACH
 * unattach and shut them down, as KCM's documentation asks of its applications.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <bpf/bpf.h>

#include "internal.h"

#define SETTLE_POLL_MS 10
#define DRAIN_MAX_MS 1000

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *kcm_fail_reason_name(enum kcm_fail_reason r)
{
	static const char *const names[] = {
		[KCM_FAIL_NONE] = "none",
		[KCM_FAIL_RESET] = "reset",
		[KCM_FAIL_PEER_CLOSED] = "peer-closed",
		[KCM_FAIL_TIMEOUT] = "timeout",
		[KCM_FAIL_ASSEMBLY_TIMEOUT] = "assembly-timeout",
		[KCM_FAIL_TOO_BIG] = "too-big",
		[KCM_FAIL_BAD_LENGTH] = "bad-length",
		[KCM_FAIL_SEND] = "send",
		[KCM_FAIL_OTHER] = "other",
	};

	return (unsigned int)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ? -1 : ti.tcpi_state;
}

static bool tx_is_dead(struct kcm_mux *mux, uint64_t cookie)
{
	struct kcm_transport *t;
	bool dead;

	pthread_rwlock_rdlock(&mux->tx_lock);
	t = kcm_tx_find(mux, cookie);
	dead = t && atomic_load(&t->dead);
	pthread_rwlock_unlock(&mux->tx_lock);
	return dead;
}

static void tx_mark_dead(struct kcm_mux *mux, uint64_t cookie)
{
	struct kcm_transport *t;

	pthread_rwlock_rdlock(&mux->tx_lock);
	t = kcm_tx_find(mux, cookie);
	if (t)
		atomic_store(&t->dead, true);
	pthread_rwlock_unlock(&mux->tx_lock);
}

/*
 * After a FIN, strparser may still be passing on what arrived before it. The transport
 * is done when every byte it received was passed on, or the rest is the start of a
 * message that can no longer complete.
 */
static bool drained(struct kcm_mux *mux, uint32_t slot, int fd)
{
	struct kcm_transport_stats *ts = &mux->tstats[slot];
	int64_t pending = kcm_stats_pending(mux, slot, fd);
	uint32_t seen, need;

	uint64_t first = 0, now = now_ms();

	if (pending <= 0)
		return true;
	seen = __atomic_load_n(&ts->partial_bytes, __ATOMIC_RELAXED);
	need = __atomic_load_n(&ts->partial_need, __ATOMIC_RELAXED);
	if (__atomic_load_n(&ts->partial, __ATOMIC_ACQUIRE) &&
	    (seen >= pending || (need && pending < need)))
		return true;
	/* strparser runs as data arrives: bytes still unparsed a second later never will be */
	__atomic_compare_exchange_n(&ts->fin_ms, &first, now, false, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
	return first && now - first > DRAIN_MAX_MS;
}

/* The reason, or KCM_FAIL_NONE while the transport is healthy. */
static enum kcm_fail_reason diagnose(struct kcm_mux *mux, uint32_t slot, int fd, uint64_t cookie,
				     int *err, int *state)
{
	int perr = __atomic_load_n(&mux->tstats[slot].last_err, __ATOMIC_ACQUIRE), soerr = 0;
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	socklen_t len = sizeof(soerr);

	poll(&p, 1, 0);
	*state = tcp_state(fd);
	*err = 0;
	if (p.revents & POLLERR)
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
	if (perr) {
		*err = perr;
		return perr == EMSGSIZE ? KCM_FAIL_TOO_BIG : KCM_FAIL_BAD_LENGTH;
	}
	*err = soerr;
	switch (soerr) {
	case 0:
		break;
	case ECONNRESET:
	case EPIPE:
		return KCM_FAIL_RESET;
	case ETIMEDOUT:
		/* strparser's SO_RCVTIMEO fails a connection that is still established */
		return *state == BPF_TCP_ESTABLISHED ? KCM_FAIL_ASSEMBLY_TIMEOUT : KCM_FAIL_TIMEOUT;
	case EMSGSIZE: /* a message larger than the transport's receive buffer */
		return KCM_FAIL_TOO_BIG;
	default:
		return KCM_FAIL_OTHER;
	}
	if (*state == BPF_TCP_CLOSE) { /* its error was read before us */
		*err = ENOTCONN;
		return KCM_FAIL_OTHER;
	}
	if ((p.revents & (POLLRDHUP | POLLHUP)) || *state == BPF_TCP_CLOSE_WAIT ||
	    *state == BPF_TCP_LAST_ACK || *state == BPF_TCP_CLOSING || *state == BPF_TCP_TIME_WAIT)
		return drained(mux, slot, fd) ? KCM_FAIL_PEER_CLOSED : KCM_FAIL_NONE;
	if (tx_is_dead(mux, cookie)) {
		*err = EPIPE;
		return KCM_FAIL_SEND;
	}
	return KCM_FAIL_NONE;
}

/* The slot of transport @cookie: the map's word, or (a connected mux cannot read the
 * map) the transmit table's, which the sidecar filled. */
static int slot_of(struct kcm_mux *mux, uint64_t cookie, __u32 *slot)
{
	struct kcm_transport *t;

	if (!kcm_is_remote(mux))
		return bpf_map_lookup_elem(mux->map_fd[KCM_MAP_TRANSPORT_SLOT], &cookie, slot);
	pthread_rwlock_rdlock(&mux->tx_lock);
	t = kcm_tx_find(mux, cookie);
	if (t)
		*slot = t->slot;
	pthread_rwlock_unlock(&mux->tx_lock);
	return t ? 0 : -ENOENT;
}

static void fill_addrs(struct kcm_mux *mux, uint32_t slot, struct kcm_transport_event *ev)
{
	struct kcm_transport_info info;

	if (kcm_is_remote(mux)) { /* no map to read: the transmit table kept them */
		struct kcm_transport *t;

		pthread_rwlock_rdlock(&mux->tx_lock);
		t = kcm_tx_find(mux, ev->cookie);
		if (t) {
			ev->local = t->local;
			ev->remote = t->remote;
		}
		pthread_rwlock_unlock(&mux->tx_lock);
		return;
	}
	if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &slot, &info) ||
	    info.cookie != ev->cookie)
		return;
	kcm_sockaddr_of(&ev->local, info.family, info.local_addr, info.local_port);
	kcm_sockaddr_of(&ev->remote, info.family, info.remote_addr, info.remote_port);
}

int kcm_transport_check(struct kcm_mux *mux, int fd, struct kcm_transport_event *ev,
			unsigned int flags)
{
	struct kcm_transport_stats *ts;
	enum kcm_fail_reason reason;
	uint64_t cookie;
	__u32 slot;
	int err, state;

	if (!mux || !ev || (flags & ~KCM_AUTO_UNATTACH)) {
		errno = EINVAL;
		return -1;
	}
	cookie = kcm_sock_cookie(fd);
	if (!cookie || slot_of(mux, cookie, &slot) ||
	    slot >= KCM_MAX_TRANSPORTS || mux->tstats[slot].cookie != cookie) {
		errno = cookie ? ENOENT : EBADF;
		return -1;
	}
	ts = &mux->tstats[slot];
	reason = diagnose(mux, slot, fd, cookie, &err, &state);
	if (reason == KCM_FAIL_NONE)
		return 0;
	memset(ev, 0, sizeof(*ev));
	ev->cookie = cookie;
	ev->reason = reason;
	ev->err = err;
	ev->tcp_state = state;
	fill_addrs(mux, slot, ev);
	tx_mark_dead(mux, cookie); /* the mux stops sending on it */
	ev->lost_msgs = kcm_stats_lost(mux, slot, cookie, fd, &ev->lost_bytes);
	if (!(__atomic_fetch_or(&ts->accounted, FAILURE_COUNTED, __ATOMIC_ACQ_REL) & FAILURE_COUNTED)) {
		__atomic_fetch_add(&mux->xstats->transport_failures, 1, __ATOMIC_RELAXED);
		if (reason == KCM_FAIL_ASSEMBLY_TIMEOUT) {
			__atomic_fetch_add(&ts->err_timeout, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&mux->xstats->err_timeout, 1, __ATOMIC_RELAXED);
		}
	}
	if (flags & KCM_AUTO_UNATTACH) {
		shutdown(fd, SHUT_RDWR); /* closes it for its owner too */
		if (!kcm_unattach(mux, fd) || errno == ENOENT) {
			ev->unattached = true;
			__atomic_fetch_add(&mux->xstats->auto_unattached, 1, __ATOMIC_RELAXED);
		}
	}
	return 1;
}

/* Copies of the fds of the transports not reported yet; returns how many. */
static unsigned int watch_list(struct kcm_mux *mux, struct pollfd *p, uint64_t *cookies,
			       bool *settling)
{
	unsigned int n = 0;

	*settling = false;
	pthread_rwlock_rdlock(&mux->tx_lock);
	for (unsigned int i = 0; i < mux->ntx; i++) {
		struct kcm_transport *t = mux->tx[i];
		int fd;

		if (atomic_load(&t->reported))
			continue;
		fd = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			continue;
		/* a transport draining after a FIN is looked at on a timer, not on POLLRDHUP */
		p[n] = (struct pollfd){ .fd = fd, .events = POLLRDHUP };
		if (t->settling || atomic_load(&t->dead)) {
			p[n].events = 0; /* looked at every pass */
			*settling = true;
		}
		cookies[n++] = t->cookie;
	}
	pthread_rwlock_unlock(&mux->tx_lock);
	return n;
}

static void mark(struct kcm_mux *mux, uint64_t cookie, bool reported, bool settling)
{
	struct kcm_transport *t;

	pthread_rwlock_rdlock(&mux->tx_lock);
	t = kcm_tx_find(mux, cookie);
	if (t && reported)
		atomic_store(&t->reported, true);
	if (t)
		t->settling = settling;
	pthread_rwlock_unlock(&mux->tx_lock);
}

int kcm_transport_poll(struct kcm_mux *mux, struct kcm_transport_event *ev, unsigned int max,
		       int timeout_ms, unsigned int flags)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + timeout_ms;
	struct pollfd *p = calloc(KCM_MAX_TRANSPORTS, sizeof(*p));
	uint64_t *cookies = calloc(KCM_MAX_TRANSPORTS, sizeof(*cookies));
	int found = 0, err = 0;

	if (!mux || !ev || !max || (flags & ~KCM_AUTO_UNATTACH) || !p || !cookies) {
		err = p && cookies ? -EINVAL : -ENOMEM;
		goto out;
	}
	while (!found) {
		uint64_t now = now_ms();
		bool settling;
		unsigned int n;
		int wait, r;

		err = kcm_tx_refresh(mux); /* transports other processes attached since */
		if (err)
			break;
		n = watch_list(mux, p, cookies, &settling);
		wait = deadline == UINT64_MAX ? -1 : deadline > now ? (int)(deadline - now) : 0;
		if (settling && (wait < 0 || wait > SETTLE_POLL_MS))
			wait = SETTLE_POLL_MS;
		/* wake now and then to see transports attached by other processes */
		if (mux->name[0] && (wait < 0 || wait > 1000))
			wait = 1000;
		r = poll(p, n, wait);
		if (r < 0)
			err = -errno;
		for (unsigned int i = 0; i < n; i++) {
			if (!err && found < (int)max && (p[i].revents || !p[i].events)) {
				r = kcm_transport_check(mux, p[i].fd, &ev[found], flags);
				if (r == 1)
					found++;
				/* reported, or not attached any more: never looked at again */
				mark(mux, cookies[i], r != 0,
				     r == 0 && (!p[i].events || (p[i].revents & (POLLRDHUP | POLLHUP))));
			}
			close(p[i].fd);
		}
		if (err || now_ms() >= deadline)
			break;
	}
out:
	free(p);
	free(cookies);
	if (err) {
		errno = -err;
		return -1;
	}
	return found;
}
