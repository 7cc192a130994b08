/* verdict.h: what the datapath tells user space about every verdict.
 *
 *   warrant_counters  per-CPU array indexed by verdict * REASON_COUNT + reason
 *                     (verdicts ADMIT 0, DROP 1, PASS 2 as in constants.Verdict),
 *                     {packets, bytes}; two extra slots count events the ring
 *                     buffer could not take and REJECTs sent (reject.h).  Events
 *                     the budget suppressed and REJECTs the rate limit withheld
 *                     are counted in warrant_percpu (session.h), where the budget
 *                     and the bucket are: a flood costs no further lookup.
 *   warrant_events    ring buffer of struct warrant_event_record: every drop, one
 *                     admit in DP_ADMIT_SAMPLE (per CPU), PASS verdicts only when
 *                     the config asks; at most DP_EVENT_BUDGET per tick per CPU.
 *                     The record (72 bytes: addresses of 16 bytes and a family)
 *                     is built only for an event emitted, past the budget, by a
 *                     global function: struct warrant_event, zeroed and filled for
 *                     every frame, keeps its 4-byte IPv4 addresses, and an IPv6
 *                     frame's addresses are read from its header then, so that a
 *                     flood (budget spent) pays nothing for them.
 *   warrant_config    global data written by the loader (no lookup per packet).
 *
 * Also the bad-MAC token bucket: a flood of forged packets for a known session id
 * (an on-path observer can learn one) costs one header MAC per token, then is
 * dropped as RATE_LIMITED before the MAC is computed (SPEC P9; docs/datapath.md).
 */
#ifndef WARRANT_VERDICT_H
#define WARRANT_VERDICT_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "warrant_constants.h"
#include "session.h"
#include "wire.h"

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

/* What a frame's judgement knows, zeroed and filled for every frame (warrant_run). */
struct warrant_event {
	__u64 session_id; /* raw wire bytes */
	__u64 seq;
	__u64 time_ns;    /* kernel clock (session.h); 0 when not read */
	__u32 saddr;      /* IPv4, network order (0 for IPv6: see the record) */
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

/* The ring-buffer record of one emitted event (loader.py _EVENT): the fields of struct
 * warrant_event, with addresses of either family. */
struct warrant_event_record {
	__u64 session_id;
	__u64 seq;
	__u64 time_ns;
	__u8 saddr[16];   /* network order; IPv4: the first 4 bytes, the rest 0 */
	__u8 daddr[16];
	__u16 sport;      /* host order */
	__u16 dport;
	__u8 verdict;
	__u8 reason;
	__u8 kind;
	__u8 hop_count;
	__u32 len;
	__u8 family;      /* 6 for an IPv6 frame (its header's addresses), else 4 */
	__u8 _pad[3];
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

/* The frame's IPv6 header (its VLAN tags skipped as the parse skips them, wire.h), or 0
 * for any other frame.  Found again here, from the frame, so that the per-frame path
 * keeps nothing for it: the frame is not yet rewritten (a REJECT comes after). */
static __always_inline __u8 *warrant_event_ip6(__u8 *data, __u8 *data_end)
{
	__u32 l3 = sizeof(struct ethhdr);
	if (data + sizeof(struct ethhdr) > data_end)
		return 0;
	__u16 proto = ((struct ethhdr *)data)->h_proto;
#pragma clang loop unroll(full)
	for (int i = 0; i < WARRANT_DP_MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(WARRANT_ETH_P_8021Q) &&
		    proto != bpf_htons(WARRANT_ETH_P_8021AD))
			break;
		if (data + l3 + 4 > data_end)
			return 0;
		proto = *(__u16 *)(data + l3 + 2);
		l3 += 4;
	}
	if (proto != bpf_htons(ETH_P_IPV6) || data + l3 + WARRANT_IPV6_HLEN > data_end)
		return 0;
	return data + l3;
}

/* Reserve, fill and submit the record of one event; 0, or -1 when the ring is full. */
static __always_inline int warrant_event_emit(struct warrant_event *ev, __u8 *data,
					      __u8 *data_end)
{
	struct warrant_event_record *r =
		bpf_ringbuf_reserve(&warrant_events, sizeof(struct warrant_event_record), 0);
	if (!r)
		return -1;
	r->session_id = ev->session_id;
	r->seq = ev->seq;
	r->time_ns = ev->time_ns;
	r->sport = ev->sport;
	r->dport = ev->dport;
	r->verdict = ev->verdict;
	r->reason = ev->reason;
	r->kind = ev->kind;
	r->hop_count = ev->hop_count;
	r->len = ev->len;
	r->_pad[0] = r->_pad[1] = r->_pad[2] = 0;
	__u64 *a = (__u64 *)r->saddr; /* saddr, daddr: 32 bytes at an 8-aligned offset */
	__u8 *ip6 = warrant_event_ip6(data, data_end);
	if (ip6) {
		__u64 *src = (__u64 *)(ip6 + 8); /* source at + 8, destination at + 24 */
		a[0] = src[0];
		a[1] = src[1];
		a[2] = src[2];
		a[3] = src[3];
		r->family = 6;
	} else {
		*(__u32 *)r->saddr = ev->saddr;
		*(__u32 *)(r->saddr + 4) = 0;
		a[1] = 0;
		*(__u32 *)r->daddr = ev->daddr;
		*(__u32 *)(r->daddr + 4) = 0;
		a[3] = 0;
		r->family = 4;
	}
	/* No wakeup: user space drains the ring on a timer, so a flood of drops never
	 * costs an interrupt per event (P9: invalid DATA does not wake user space). */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

/* The emission as global functions, one per attach point (its context gives the frame):
 * verified once, not in every state of the callers (which a frame read there would
 * keep apart by framing to the end of the program). */
__attribute__((noinline)) int warrant_event_xdp(struct xdp_md *ctx, struct warrant_event *ev)
{
	if (!ev)
		return -1;
	return warrant_event_emit(ev, (__u8 *)(long)ctx->data, (__u8 *)(long)ctx->data_end);
}

__attribute__((noinline)) int warrant_event_tc(struct __sk_buff *skb, struct warrant_event *ev)
{
	if (!ev)
		return -1;
	return warrant_event_emit(ev, (__u8 *)(long)skb->data, (__u8 *)(long)skb->data_end);
}

/* Count the frame, and emit its event when the config and the budget let it.  ctx: the
 * attach point's context (xdp: which), read only for an event emitted. */
static __always_inline void warrant_account(struct warrant_event *ev, __u32 frame_len,
					    struct warrant_percpu *pc, void *ctx, int xdp)
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
	if (xdp ? warrant_event_xdp(ctx, ev) : warrant_event_tc(ctx, ev))
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
