// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The connect pool's slot transitions and backoff (pool.h): no I/O, unit-tested. */
#include <stdlib.h>

#include "pool.h"

unsigned int pool_backoff_ms(struct pool *p, unsigned int failures)
{
	uint64_t base = p->backoff_min_ms, d;

	for (unsigned int i = 1; i < failures && base < p->backoff_max_ms; i++)
		base *= 2;
	if (base > p->backoff_max_ms)
		base = p->backoff_max_ms;
	/* jitter, so that slots failing together do not retry in lockstep */
	d = base * 3 / 4 + (uint64_t)rand_r(&p->seed) % (base / 2 + 1);
	return d < p->backoff_max_ms ? d : p->backoff_max_ms;
}

unsigned int pool_slot_failed(struct pool *p, unsigned int idx, uint64_t now)
{
	struct slot *s = &p->slots[idx];
	unsigned int delay;

	s->state = IDLE;
	s->failures++;
	delay = pool_backoff_ms(p, s->failures);
	s->due_ms = now + delay;
	s->addr = (s->addr + 1) % (p->naddr ? p->naddr : 1);
	return delay;
}

bool pool_slot_up(struct pool *p, unsigned int idx, uint64_t now)
{
	struct slot *s = &p->slots[idx];

	s->state = UP;
	s->draining = false;
	s->up_ms = now;
	p->up++;
	return p->up == p->count;
}

unsigned int pool_slot_lost(struct pool *p, unsigned int idx, uint64_t now)
{
	struct slot *s = &p->slots[idx];
	unsigned int delay = 0;

	s->state = IDLE;
	p->up--;
	if (now - s->up_ms >= POOL_STABLE_MS) {
		s->failures = 0;
	} else {
		s->failures++;
		delay = pool_backoff_ms(p, s->failures);
	}
	s->due_ms = now + delay;
	return delay;
}
