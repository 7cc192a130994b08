/* verdict.h: what the datapath tells user space about every verdict.
 *
 *   warrant_counters  per-CPU array indexed by verdict * REASON_COUNT + reason
 *                     (verdicts ADMIT 0, DROP 1, PASS 2 as in constants.Verdict),
 *                     {packets, bytes}; two extra slots count events the ring
 *                     buffer could not take and REJECTs sent (reject.h).  Events
 *                     the budget suppressed and REJECTs the rate limit withheld
 *                     are counted in warrant_percpu (session.h), where the budget
 *                     and the bucket are: a flood costs no further lookup.
 *   warrant_events    ring buffer of struct warrant_event: every drop, one admit
 *                     in DP_ADMIT_SAMPLE (per CPU), PASS verdicts only when the
 *                     config asks; at most DP_EVENT_BUDGET per tick per CPU.
 *   warrant_config    global data written by the loader (no lookup per packet).
 *
 * Also the bad-MAC token bucket: a flood of forged packets for a known session id
 * (an on-path observer can learn one) costs one header MAC per token, then is
 * dropped as RATE_LIMITED before the MAC is computed (SPEC P9; docs/datapath.md).
 */
#ifndef WARRANT_VERDICT_H
#define WARRANT_VERDICT_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "warrant_constants.h"
#include "session.h"

#define WARRANT_VERDICTS 3
#define WARRANT_COUNTER_EVENTS_LOST (WARRANT_VERDICTS * WARRANT_REASON_COUNT)
#define WARRANT_COUNTER_REJECTS_SENT (WARRANT_COUNTER_EVENTS_LOST + 1)
#define WARRANT_COUNTER_SLOTS (WARRANT_COUNTER_REJECTS_SENT + 1)

#define WARRANT_CONFIG_PASS_EVENTS 0x1    /* events for PASS verdicts too (tests) */
#define WARRANT_CONFIG_NO_DROP_EVENTS 0x2 /* counters only for drops */
#define WARRANT_CONFIG_NO_BUDGET 0x4      /* no per-CPU event budget (tests) */

struct warrant_counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WARRANT_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct warrant_counter);
} warrant_counters SEC(".maps");

struct warrant_config {
	__u32 admit_mask;   /* admitted packets: an event when (count & mask) == 0; a power
			       of two minus one (DP_ADMIT_SAMPLE - 1); 0xffffffff: none */
	__u32 flags;
};

/* Global data (".data.warrant_config", read without a lookup); the initial value is the
 * deployed default, which a map created by an upgrade starts from. */
struct warrant_config warrant_config SEC(".data.warrant_config") = {
	.admit_mask = WARRANT_DP_ADMIT_SAMPLE - 1,
};

struct warrant_event {
	__u64 session_id; /* raw wire bytes */
	__u64 seq;
	__u64 time_ns;    /* kernel clock (session.h); 0 when not read */
	__u32 saddr;      /* network order */
	__u32 daddr;
	__u16 sport;      /* host order */
	__u16 dport;
	__u8 verdict;
	__u8 reason;
	__u8 kind;
	__u8 hop_count;
	__u32 len;        /* Warrant packet (UDP payload) length */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} warrant_events SEC(".maps");

static __always_inline void warrant_count_slot(__u32 slot)
{
	struct warrant_counter *c = bpf_map_lookup_elem(&warrant_counters, &slot);
	if (c)
		c->packets += 1;
}

/* Per-CPU event budget (warrant_percpu): at most DP_EVENT_BUDGET events per clock
 * tick per CPU.  A flood is then dropped at the cost of its counters (every packet is
 * counted), and user space sees how many events it missed (events_suppressed). */
static __always_inline int warrant_budget_take(struct warrant_event *ev,
					       struct warrant_percpu *pc)
{
	__u64 now = ev->time_ns ? ev->time_ns : warrant_now(pc);
	__u64 tick = now >> WARRANT_DP_CLOCK_TICK_SHIFT;
	if (tick != pc->budget_tick) {
		pc->budget_tick = tick;
		pc->budget_left = WARRANT_DP_EVENT_BUDGET;
	}
	if (!pc->budget_left)
		return 0;
	pc->budget_left -= 1;
	return 1;
}

static __always_inline void warrant_account(struct warrant_event *ev, __u32 frame_len,
					    struct warrant_percpu *pc)
{
	__u32 slot = (__u32)ev->verdict * WARRANT_REASON_COUNT + ev->reason;
	if (slot >= WARRANT_COUNTER_EVENTS_LOST)
		return;
	struct warrant_counter *c = bpf_map_lookup_elem(&warrant_counters, &slot);
	if (!c)
		return;
	c->packets += 1;
	c->bytes += frame_len;

	struct warrant_config *cfg = &warrant_config;
	if (ev->verdict == WARRANT_VERDICT_DROP) {
		if (cfg->flags & WARRANT_CONFIG_NO_DROP_EVENTS)
			return;
	} else if (ev->verdict == WARRANT_VERDICT_ADMIT) {
		if (c->packets & cfg->admit_mask)
			return;
	} else if (!(cfg->flags & WARRANT_CONFIG_PASS_EVENTS)) {
		return;
	}
	if (!(cfg->flags & WARRANT_CONFIG_NO_BUDGET) && !warrant_budget_take(ev, pc)) {
		pc->events_suppressed += 1;
		return;
	}
	/* No wakeup: user space drains the ring on a timer, so a flood of drops never
	 * costs an interrupt per event (P9: invalid DATA does not wake user space). */
	if (bpf_ringbuf_output(&warrant_events, ev, sizeof(*ev), BPF_RB_NO_WAKEUP))
		warrant_count_slot(WARRANT_COUNTER_EVENTS_LOST);
}

/* Bad-MAC bucket: refill by ticks of the kernel clock; 0 tokens -> RATE_LIMITED. */
static __always_inline int warrant_bad_mac_allowed(struct warrant_session *s, __u64 now)
{
	__u64 tick = now >> WARRANT_DP_CLOCK_TICK_SHIFT;
	if (tick != s->bad_mac_tick) {
		__u64 ticks = tick - s->bad_mac_tick;
		__u64 tokens = s->bad_mac_tokens;
		if (tick < s->bad_mac_tick || ticks >= WARRANT_DP_BAD_MAC_BURST)
			tokens = WARRANT_DP_BAD_MAC_BURST;
		else
			tokens += ticks * WARRANT_DP_BAD_MAC_REFILL;
		if (tokens > WARRANT_DP_BAD_MAC_BURST)
			tokens = WARRANT_DP_BAD_MAC_BURST;
		s->bad_mac_tokens = (__u32)tokens;
		s->bad_mac_tick = tick;
	}
	return s->bad_mac_tokens != 0;
}

static __always_inline void warrant_bad_mac_charge(struct warrant_session *s)
{
	if (s->bad_mac_tokens)
		s->bad_mac_tokens -= 1;
}

#endif
