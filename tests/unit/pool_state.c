// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of the connect pool's slot transitions and backoff (user/loader/pool_state.c):
 * doubling, the cap, the jitter's bounds, the address rotation, and the rule that a
 * connection which failed right after coming up counts as a failed attempt.
 */
#include <stdint.h>

#include "pool.h"
#include "harness.h"

static struct slot slots[4];

static struct pool pool_of(unsigned int min, unsigned int max, unsigned int naddr)
{
	struct pool p = { .backoff_min_ms = min, .backoff_max_ms = max, .naddr = naddr,
			  .count = 4, .slots = slots, .seed = 42 };

	memset(slots, 0, sizeof(slots));
	return p;
}

/* failure n waits min * 2^(n-1), +-25%, capped at max */
static void test_backoff_doubles_within_jitter(void)
{
	struct pool p = pool_of(100, 100000, 1);

	for (unsigned int n = 1; n <= 8; n++) {
		unsigned int base = 100u << (n - 1);

		for (int i = 0; i < 200; i++) {
			unsigned int d = pool_backoff_ms(&p, n);

			CHECK_EQ(d >= base * 3 / 4, true, "failure %u: %u >= %u", n, d, base * 3 / 4);
			CHECK_EQ(d <= base + base / 4, true, "failure %u: %u <= %u", n, d,
				 base + base / 4);
		}
	}
}

static void test_backoff_capped(void)
{
	struct pool p = pool_of(100, 5000, 1);
	unsigned int lo = 5000, hi = 0;

	for (unsigned int n = 7; n <= 64; n++) {
		for (int i = 0; i < 50; i++) {
			unsigned int d = pool_backoff_ms(&p, n);

			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
	}
	CHECK_EQ(hi <= 5000, true, "never above the cap (saw %u)", hi);
	CHECK_EQ(lo >= 3750, true, "at the cap, jitter takes at most 25%% off (saw %u)", lo);
	/* the very first failure, and a minimum above the maximum's reach */
	CHECK_EQ(pool_backoff_ms(&p, 1) <= 125, true, "first failure near backoff_min");
}

/* jitter really spreads: slots failing together must not retry in lockstep */
static void test_backoff_jitter_spreads(void)
{
	struct pool p = pool_of(1000, 60000, 1);
	unsigned int seen[501] = { 0 }, distinct = 0;

	for (int i = 0; i < 1000; i++) {
		unsigned int d = pool_backoff_ms(&p, 1);

		if (d >= 750 && d <= 1250 && !seen[d - 750]++)
			distinct++;
	}
	CHECK_EQ(distinct > 100, true, "distinct delays among 1000 (saw %u)", distinct);
}

static void test_failed_rotates_and_schedules(void)
{
	struct pool p = pool_of(100, 5000, 3);
	unsigned int d;

	slots[0].state = CONNECTING;
	d = pool_slot_failed(&p, 0, 10000);
	CHECK_EQ(slots[0].state, IDLE, "state after a failed connect");
	CHECK_EQ(slots[0].failures, 1, "failures");
	CHECK_EQ(slots[0].due_ms, 10000 + d, "next attempt");
	CHECK_EQ(slots[0].addr, 1, "next address");
	pool_slot_failed(&p, 0, 20000);
	pool_slot_failed(&p, 0, 30000);
	CHECK_EQ(slots[0].addr, 0, "addresses wrap");
	CHECK_EQ(slots[0].failures, 3, "failures count up");
}

static void test_up_resets_nothing_until_stable(void)
{
	struct pool p = pool_of(100, 5000, 1);
	bool all = false;
	unsigned int d;

	for (unsigned int i = 0; i < 4; i++)
		all = pool_slot_up(&p, i, 1000);
	CHECK_EQ(all, true, "the fourth slot up makes all up");
	CHECK_EQ(p.up, 4, "up");
	/* lost 999 ms after coming up: a failed attempt, with backoff */
	d = pool_slot_lost(&p, 0, 1999);
	CHECK_EQ(slots[0].state, IDLE, "state after a loss");
	CHECK_EQ(slots[0].failures, 1, "a quick loss is a failure");
	CHECK_EQ(d >= 75 && d <= 125, true, "a quick loss backs off (%u ms)", d);
	CHECK_EQ(p.up, 3, "up after a loss");
	/* lost after POOL_STABLE_MS: replaced at once, failures forgotten */
	slots[1].failures = 5;
	d = pool_slot_lost(&p, 1, 1000 + POOL_STABLE_MS);
	CHECK_EQ(d, 0, "a stable transport is replaced at once");
	CHECK_EQ(slots[1].failures, 0, "failures forgotten");
	CHECK_EQ(slots[1].due_ms, 1000 + POOL_STABLE_MS, "due now");
}

static const struct harness_test tests[] = {
	{ "backoff_doubles_within_jitter", test_backoff_doubles_within_jitter },
	{ "backoff_capped", test_backoff_capped },
	{ "backoff_jitter_spreads", test_backoff_jitter_spreads },
	{ "failed_rotates_and_schedules", test_failed_rotates_and_schedules },
	{ "up_and_lost", test_up_resets_nothing_until_stable },
};

int main(int argc, char **argv)
{
	return harness_main("unit_pool_state", tests, sizeof(tests) / sizeof(tests[0]), 10, argc, argv);
}
