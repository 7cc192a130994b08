// SPDX-License-Identifier: Apache-2.0
/* warrant_xdp.c: per-packet authority in the kernel (SPEC 6.1 steps 1-7).
 *
 * One core function, two attach points: `warrant_xdp` (XDP) and `warrant_tc`
 * (TC ingress, for interfaces without XDP).  The order of checks is the
 * reference's (src/warrant/core/receiver.py Receiver.check_data_header), so both reach
 * the same reason for the same packet; tests/test_datapath_differential.py holds
 * them to it.
 *
 *   ADMIT (DATA passed steps 1-7, seq recorded) -> XDP_PASS / TC_ACT_UNSPEC
 *   PASS  (INIT for user space, NOT_WARRANT)   -> XDP_PASS / TC_ACT_UNSPEC
 *         (TC: "next", so that the filters and tcx programs after it still run)
 *   DROP  (everything else)                    -> XDP_DROP / TC_ACT_SHOT
 *   DROP  UNKNOWN_SESSION or SESSION_EXPIRED, within the REJECT rate:
 *         the frame becomes the REJECT (reject.h) -> XDP_TX / bpf_redirect to
 *         the ingress interface (TC_ACT_REDIRECT)
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "warrant_constants.h"
#include "wire.h"
#include "session.h"
#include "replay.h"
#include "mac.h"
#include "hop.h"
#include "verdict.h"
#include "reject.h"
#include "encap.h"

char LICENSE[] SEC("license") = "GPL";

/* uapi value (1 << 10) newer than this build's headers; the helper refuses it with
 * -EINVAL where the kernel does not know it, and warrant_tp_deliver then does without */
#define WARRANT_ADJ_ROOM_DECAP_L4_UDP (1ULL << 10)

/* The segment-train checks of steps 5 and 5a (SPEC 13.7) on w, which the caller filled:
 * a global function, so the verifier checks it once instead of in every state its
 * callers reach (the parse and hop paths multiply those).  Returns -1 when the packet
 * is no piece of its described train (refused as BAD_MAC before the MAC: the caller
 * charges the bad-MAC bucket), else the inner check's reason of the packet's own
 * headers, with w->tag the MAC of the template and w->first/count its places. */
__attribute__((noinline)) int warrant_tp_train_judge(struct warrant_tp_work *w)
{
	if (!w)
		return -1;
	int inner_reason = warrant_tp_inner_check(&w->b, &w->inner, w->inner_len);
	if (!warrant_tp_train_place(&w->t, &w->inner, w->gso, &w->first, &w->count))
		return -1;
	warrant_tp_train_template(&w->inner, &w->t);
	warrant_tp_train_mac(w->k0, w->k1, w->m0, w->m1, w->m2, *(__u64 *)&w->t, &w->inner,
			     w->tag);
	return inner_reason;
}

/* Steps 2-7 for a parsed DATA header.  Fills ev->time_ns.  len: the Warrant packet's
 * length; *tp: set to the binding of an admitted transparent packet (SPEC 13); *train:
 * set when it was a segment train (13.7).  gso: the segment size of a TC skb holding
 * several wire packets (0: one), which only a whole train may be. */
static __always_inline int warrant_check_data(struct warrant_data *d, __u8 *data_end,
					      __u16 dport, struct warrant_event *ev, __u32 len,
					      __u32 gso, struct warrant_tp_binding **tp,
					      __u8 *train, struct warrant_percpu *pc)
{
	__u8 *pkt = d->pkt;

	/* 2. session lookup */
	struct warrant_session *s = warrant_session_lookup(&d->session_id);
	if (!s)
		return WARRANT_REASON_UNKNOWN_SESSION;

	/* 3. lifetime: the reference removes an expired session; so does the kernel */
	__u64 now = warrant_now(pc);
	ev->time_ns = now;
	if (now >= s->expires_ns) {
		/* its window index is freed by user space when it removes the session */
		warrant_session_remove(&d->session_id);
		return WARRANT_REASON_SESSION_EXPIRED;
	}

	/* 4. claimed port */
	if (dport != s->port)
		return WARRANT_REASON_PORT_MISMATCH;

	/* 5. header MAC, behind the per-session bad-MAC bucket */
	if (!warrant_bad_mac_allowed(s, now))
		return WARRANT_REASON_RATE_LIMITED;
	if (pkt + WARRANT_DATA_HEADER_LEN > data_end)
		return WARRANT_REASON_MALFORMED;
	/* hop_count zeroed, flags covered (SPEC 3.1): INNER_IP set on a session that is not
	 * bound as transparent fails the MAC below */
	__u64 m0 = (__u64)WARRANT_VERSION | ((__u64)WARRANT_KIND_DATA << 8) |
		   ((__u64)pkt[WARRANT_OFF_FLAGS] << 24) |
		   ((__u64)*(__u32 *)(pkt + WARRANT_OFF_SESSION_ID) << 32);
	__u64 m1 = *(__u64 *)(pkt + WARRANT_OFF_SESSION_ID + 4);
	__u64 m2 = *(__u32 *)(pkt + WARRANT_OFF_SESSION_ID + 12);
	__u64 tag[2];
	/* Transparent DATA (SPEC 13): only on a session the agent bound as transparent;
	 * otherwise the flag is one more MAC input bit and the MAC below refuses it. */
	struct warrant_tp_binding *b = 0;
	struct warrant_tp_work *work = 0;
	struct warrant_tp_scratch *inner = 0;
	__u32 inner_len = len - WARRANT_TP_INNER_OFF;
	__u32 first = 0, count = 1;
	int inner_reason = WARRANT_REASON_OK;
	__u8 flags = pkt[WARRANT_OFF_FLAGS];
	if (flags & WARRANT_FLAG_DATA_INNER_IP) {
		__u32 zero = 0;
		b = bpf_map_lookup_elem(&warrant_tp_bindings, &d->session_id);
		work = bpf_map_lookup_elem(&warrant_tp_work, &zero);
		if (work)
			inner = &work->inner;
	}
	if (gso && !(b && inner && (flags & WARRANT_FLAG_DATA_TRAIN)))
		return WARRANT_REASON_MERGED_FRAME; /* several datagrams, one header judged */
	if (b && work && (flags & WARRANT_FLAG_DATA_TRAIN)) {
		__u8 *desc = pkt + WARRANT_TP_INNER_OFF;
		if (d->hop_count)
			return WARRANT_REASON_MALFORMED;
		if (inner_len < WARRANT_TP_TRAIN_DESC_LEN ||
		    desc + WARRANT_TP_TRAIN_DESC_LEN > data_end)
			return WARRANT_REASON_INNER_NOT_GRANTED;
		if (!warrant_tp_inner_copy(desc + WARRANT_TP_TRAIN_DESC_LEN, data_end, &work->inner))
			return WARRANT_REASON_INNER_NOT_GRANTED;
		work->t = *(struct warrant_tp_train *)desc;
		work->b = *b;
		work->inner_len = inner_len - WARRANT_TP_TRAIN_DESC_LEN;
		work->gso = gso;
		work->k0 = *(__u64 *)s->k_mac;
		work->k1 = *(__u64 *)(s->k_mac + 8);
		work->m0 = m0;
		work->m1 = m1;
		work->m2 = m2;
		int judged = warrant_tp_train_judge(work);
		if (judged < 0) {
			warrant_bad_mac_charge(s);
			return WARRANT_REASON_BAD_MAC;
		}
		inner_reason = judged; /* reported after the MAC (5a) */
		tag[0] = work->tag[0];
		tag[1] = work->tag[1];
		first = work->first;
		count = work->count;
		*train = 1;
	} else if (b && inner) {
		if (d->hop_count)
			return WARRANT_REASON_MALFORMED;
		if (!warrant_tp_inner_copy(pkt + WARRANT_TP_INNER_OFF, data_end, inner))
			return WARRANT_REASON_INNER_NOT_GRANTED;
		warrant_tp_mac(*(__u64 *)s->k_mac, *(__u64 *)(s->k_mac + 8),
			       m0, m1, m2, inner, tag);
	} else {
		warrant_header_mac(*(__u64 *)s->k_mac, *(__u64 *)(s->k_mac + 8), m0, m1, m2,
				   tag);
	}
	if ((tag[0] ^ *(__u64 *)(pkt + WARRANT_OFF_MAC)) |
	    (tag[1] ^ *(__u64 *)(pkt + WARRANT_OFF_MAC + 8))) {
		warrant_bad_mac_charge(s);
		return WARRANT_REASON_BAD_MAC;
	}
	/* 5a. transparent: the inner packet against the binding (encap.h) */
	if (b && inner) {
		if (!*train)
			inner_reason = warrant_tp_inner_check(b, inner, inner_len);
		if (inner_reason != WARRANT_REASON_OK)
			return inner_reason;
		*tp = b;
	}

	/* 6. hop records */
	int reason = warrant_check_hops(pkt, data_end, d->hop_count, s);
	if (reason != WARRANT_REASON_OK)
		return reason;

	/* 7. replay window (lock-free, replay.h), at the session's index */
	struct warrant_replay *w = bpf_map_lookup_elem(&warrant_replay, &s->window);
	if (!w)
		return WARRANT_REASON_UNKNOWN_SESSION; /* index out of range: treat as lost state */
	int fresh = count > 1 /* a whole train: every wire packet's number (replay.h) */
			? warrant_replay_update_range(w, d->seq + first, count)
			: warrant_replay_update(w, d->seq + first);
	/* 10. transparent: the credential's rate, per wire packet (encap.h); ordinary DATA
	 * meets it where user space opens the payload (step 8 comes first) */
	if (fresh != WARRANT_REASON_OK || !b)
		return fresh;
	return warrant_tp_rate(b, now, count);
}

/* What the attach point knows about the frame beyond its bytes. */
struct warrant_meta {
	void *ctx;     /* XDP: for bpf_check_mtu against the ingress device */
	__u32 segs;    /* TC: datagrams in the skb (gso_segs; 0 = not yet counted); XDP: 1 */
	__u8 unread;   /* TC: the headers could not be made linear (failed pull) */
	struct warrant_tp_binding *tp; /* admitted transparent DATA: where it goes */
	__u32 gso;     /* TC: the skb's segment size (gso_size) */
	__u8 train;    /* admitted transparent DATA was a segment train (SPEC 13.7) */
	__u32 no_reject; /* non-zero: a merged skb, or DATA with the TRAIN flag, whose frame
			  * may carry a partial checksum (offload) that no REJECT can be cut
			  * from (the agent answers); set without a branch (verifier states) */
	__u32 l3_off;  /* and where its outer IP header starts */
	__u8 ipv6;
};

/* Several datagrams in one frame (SPEC 3: MERGED_FRAME).  TC sees the GSO count; XDP
 * sees no skb, so generic XDP (which runs after GRO) can only tell a merged frame by an
 * IP length above the ingress device's MTU (merges that fit in the MTU pass unseen). */
static __always_inline int warrant_merged(struct warrant_meta *m, struct warrant_frame *f,
					  int xdp, struct warrant_percpu *pc)
{
	if (!xdp)
		return m->segs != 1;
	/* bpf_check_mtu is a helper call (~17 ns here): a length this CPU saw fit on this
	 * device during this tick, or a longer one, answers for shorter frames (session.h) */
	struct xdp_md *ctx = m->ctx;
	__u32 ifindex = ctx->ingress_ifindex;
	__u64 j = bpf_jiffies64();
	if (pc->mtu_jiffies == j && pc->mtu_ifindex == ifindex && f->ip_len <= pc->mtu_ok)
		return 0;
	__u32 mtu = f->ip_len; /* input: an L3 length to check against the device's MTU */
	int ret = bpf_check_mtu(ctx, 0, &mtu, 0, 0);
	if (ret == BPF_MTU_CHK_RET_FRAG_NEEDED)
		return 1;
	if (ret == BPF_MTU_CHK_RET_SUCCESS) {
		if (pc->mtu_jiffies != j || pc->mtu_ifindex != ifindex)
			pc->mtu_ok = 0;
		pc->mtu_jiffies = j;
		pc->mtu_ifindex = ifindex;
		if (f->ip_len > pc->mtu_ok)
			pc->mtu_ok = f->ip_len;
	}
	return 0;
}

/* The whole decision for one frame.  Returns a verdict; ev holds reason and context. */
static __always_inline int warrant_decide(__u8 *data, __u8 *data_end, __u32 pkt_len,
					  struct warrant_meta *m, int xdp,
					  struct warrant_event *ev, struct warrant_frame *f,
					  struct warrant_percpu *pc)
{
	struct warrant_data d;
	int reason;

	if (m->unread) { /* fail closed: nothing was judged */
		ev->reason = WARRANT_REASON_UNPARSED_FRAME;
		return WARRANT_VERDICT_DROP;
	}
	reason = warrant_parse_frame(data, data_end, pkt_len, f);
	if (reason == WARRANT_REASON_NOT_WARRANT) {
		ev->reason = reason;
		return WARRANT_VERDICT_PASS;
	}
	ev->saddr = f->saddr;
	ev->daddr = f->daddr;
	ev->sport = f->sport;
	ev->dport = f->dport;
	/* a merged frame is judged further only as a whole segment train (SPEC 13.7):
	 * warrant_check_data refuses anything else with MERGED_FRAME */
	__u32 gso = 0;
	if (reason == WARRANT_REASON_OK && warrant_merged(m, f, xdp, pc)) {
		__u8 *p = f->payload;
		__u8 train = WARRANT_FLAG_DATA_TRAIN | WARRANT_FLAG_DATA_INNER_IP;
		if (xdp || !m->gso || p + WARRANT_COMMON_HEADER_LEN > data_end ||
		    p[WARRANT_OFF_KIND] != WARRANT_KIND_DATA || (p[WARRANT_OFF_FLAGS] & train) != train)
			reason = WARRANT_REASON_MERGED_FRAME;
		gso = m->gso;
	}
	if (reason != WARRANT_REASON_OK) {
		ev->reason = reason;
		return WARRANT_VERDICT_DROP;
	}
	ev->len = f->len;

	d.kind = 0;
	d.hop_count = 0;
	reason = warrant_parse_data(f->payload, f->len, data_end, &d);
	ev->kind = d.kind;
	if (reason != WARRANT_REASON_OK) {
		ev->reason = reason;
		return WARRANT_VERDICT_DROP;
	}
	if (d.kind == WARRANT_KIND_INIT) {
		ev->reason = WARRANT_REASON_OK;
		return WARRANT_VERDICT_PASS; /* user space verifies the chain (SPEC 6.2) */
	}
	m->no_reject = gso | (d.pkt[WARRANT_OFF_FLAGS] & WARRANT_FLAG_DATA_TRAIN);
	ev->session_id = d.session_id;
	ev->seq = d.seq;
	ev->hop_count = d.hop_count;
	reason = warrant_check_data(&d, data_end, f->dport, ev, f->len, gso, &m->tp, &m->train,
				   pc);
	m->l3_off = f->l3_off;
	m->ipv6 = f->ipv6;
	ev->reason = reason;
	return reason == WARRANT_REASON_OK ? WARRANT_VERDICT_ADMIT : WARRANT_VERDICT_DROP;
}

/* Decide and account.  Returns the verdict; when the drop is to be answered with a
 * REJECT (reject.h: the reason asks for one and this CPU's bucket has a token), the
 * frame has been rewritten into it and *reject_len is its new length. */
static __always_inline int warrant_run(__u8 *data, __u8 *data_end, __u32 pkt_len,
				       struct warrant_meta *m, int xdp, __u32 *reject_len)
{
	struct warrant_event ev = {};
	struct warrant_frame f = {};
	__u32 zero = 0;
	*reject_len = 0;
	/* one lookup for all of this CPU's state (session.h) */
	struct warrant_percpu *pc = bpf_map_lookup_elem(&warrant_percpu, &zero);
	if (!pc) /* never: a per-CPU array's entry 0 exists; fail closed all the same */
		return WARRANT_VERDICT_DROP;
	int verdict = warrant_decide(data, data_end, pkt_len, m, xdp, &ev, &f, pc);
	ev.verdict = verdict;
	/* never from a segment train (SPEC 13.7): a merged skb, or a frame whose checksum
	 * offload pins bytes past the REJECT (the kernel refuses that cut); the transparent
	 * agent answers those from the drop event */
	if (!warrant_reject_wanted(ev.verdict, ev.reason) || m->no_reject) {
		warrant_account(&ev, pkt_len, pc, m->ctx, xdp);
		return verdict;
	}
	if (!ev.time_ns)
		ev.time_ns = warrant_now(pc); /* read once: the event budget and the bucket share it */
	warrant_account(&ev, pkt_len, pc, m->ctx, xdp);
	if (!warrant_reject_allowed(ev.time_ns, pc)) {
		pc->rejects_limited += 1;
		return verdict;
	}
	*reject_len = warrant_reject_rewrite(data, data_end, &f, ev.reason);
	if (*reject_len)
		warrant_count_slot(WARRANT_COUNTER_REJECTS_SENT);
	return verdict;
}

SEC("xdp")
int warrant_xdp(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *data_end = (__u8 *)(long)ctx->data_end;
	__u32 reject_len;
	struct warrant_meta m = {.ctx = ctx, .segs = 1};
	int verdict = warrant_run(data, data_end, (__u32)(data_end - data), &m, 1, &reject_len);
	if (reject_len) {
		/* the REJECT is at the front of the frame; cut the rest and send it back */
		if (bpf_xdp_adjust_tail(ctx, (int)reject_len - (int)(data_end - data)))
			return XDP_DROP;
		return XDP_TX;
	}
	return verdict == WARRANT_VERDICT_DROP ? XDP_DROP : XDP_PASS;
}

/* Bytes the core reads: frame headers up to the parse horizon (wire.h), the DATA
 * header and MAX_HOPS records. */
#define WARRANT_TC_PULL (WARRANT_DP_PARSE_HORIZON + WARRANT_DATA_HEADER_LEN + \
			 WARRANT_MAX_HOPS * WARRANT_HOP_RECORD_LEN)

/* Admitted transparent DATA (SPEC 13.4): strip outer IP, UDP and DATA header, keep the
 * Ethernet header (bpf_redirect_neigh rewrites it) and send the inner packet out of the
 * destination workload's veth.  Only an untagged outer IPv4 frame is decapsulated here;
 * anything else was judged but cannot be delivered: dropped (fail closed). */
static __always_inline int warrant_tp_deliver(struct __sk_buff *skb, struct warrant_meta *m)
{
	if (m->ipv6 || m->l3_off != 14)
		return TC_ACT_SHOT;
	int outer = 20 + 8 + WARRANT_DATA_HEADER_LEN;
	if (!m->train) {
		if (bpf_skb_adjust_room(skb, -outer, BPF_ADJ_ROOM_MAC, 0))
			return TC_ACT_SHOT;
		return bpf_redirect_neigh(m->tp->ifindex, 0, 0, 0);
	}
	/* A train keeps its segment size.  Kernels with BPF_F_ADJ_ROOM_DECAP_L4_UDP also
	 * drop the UDP-tunnel GSO type; older ones keep it, which is harmless for the local
	 * delivery a workload does, wrong if a workload forwarded the train (docs). */
	outer += WARRANT_TP_TRAIN_DESC_LEN;
	if (bpf_skb_adjust_room(skb, -outer, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | WARRANT_ADJ_ROOM_DECAP_L4_UDP) &&
	    bpf_skb_adjust_room(skb, -outer, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO))
		return TC_ACT_SHOT;
	return bpf_redirect_neigh(m->tp->ifindex, 0, 0, 0);
}

SEC("tc")
int warrant_tc(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	struct warrant_meta m = {.ctx = skb, .segs = skb->gso_size ? skb->gso_segs : 1,
				 .gso = skb->gso_size};
	/* Make the headers linear before taking packet pointers (never after).  A failed
	 * pull (no memory) leaves them unreadable: the frame is dropped, not passed. */
	m.unread = bpf_skb_pull_data(skb, len < WARRANT_TC_PULL ? len : WARRANT_TC_PULL) != 0;
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *data_end = (__u8 *)(long)skb->data_end;
	__u32 reject_len;
	int verdict = warrant_run(data, data_end, len, &m, 0, &reject_len);
	if (reject_len) {
		/* Cut after the REJECT and send it out of the interface it came in on
		 * (egress): the TC analogue of XDP_TX.  A redirect rather than a clone:
		 * the DATA is dropped anyway, so its skb can carry the reply.  The cut is
		 * refused for an skb whose transport header (kept across a veth from the
		 * sender's namespace, e.g. transparent mode's encapsulation, SPEC 13) lies
		 * past the REJECT: it then leaves uncut, the DATA's own bytes as padding
		 * after the IP length, which the receiving stack trims (SPEC 6.1). */
		bpf_skb_change_tail(skb, reject_len, 0);
		return bpf_redirect(skb->ifindex, 0);
	}
	if (verdict == WARRANT_VERDICT_ADMIT && m.tp)
		return warrant_tp_deliver(skb, &m);
	/* Not ours to drop: TC_ACT_UNSPEC lets the next filter or tcx program (Cilium's)
	 * run, where TC_ACT_OK would end the chain and skip it. */
	return verdict == WARRANT_VERDICT_DROP ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}
