/* encap.h: transparent mode (SPEC 13), what both ends share.
 *
 * A transparent DATA packet (flag FLAG_DATA_INNER_IP, hop_count 0) carries an inner IPv4
 * packet in clear after its 36-byte header.  Its MAC is SipHash-2-4-128(k_mac, bytes
 * [0,20) of the header with hop_count 0 and the flags kept || the inner packet's first
 * TP_MAC_INNER_LEN (40) bytes): the inner IPv4 header and the first 20 transport bytes
 * (TCP: ports, sequence numbers, flags, window, checksum; UDP: header and 12 payload
 * bytes), so nobody on the path can re-address the inner packet.  Inner packets shorter
 * than 40 bytes travel zero-padded to 40 (their IPv4 total length kept).
 *
 * The receiver binds, per transparent session (warrant_tp_bindings, written by the
 * agent from the verified INIT), the inner source address and the one destination
 * workload, protocol and port range the session's claim grants; warrant_xdp.c checks the
 * inner packet against it after the MAC (warrant_tp_inner_check) and TC delivers it.
 * Mirrored by src/warrant/datapath/transparent.py (tp_mac, inner_check).
 *
 * Segment trains (FLAG_DATA_TRAIN, SPEC 13.7): a TSO/GSO super-packet is stamped once,
 * with a descriptor after the header and a MAC over a *template* of its inner headers
 * that each of its segments reproduces; the kernel (or a NIC) may cut it anywhere on the
 * way, every piece carrying the same header.  The receiver places each piece in its train
 * (warrant_tp_train_place) from its TCP sequence number, so a piece takes sequence
 * number seq + index: replay is still per wire packet.
 */
#ifndef WARRANT_ENCAP_H
#define WARRANT_ENCAP_H

#include <linux/types.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "warrant_constants.h"
#include "mac.h"

#ifndef WARRANT_MAX_SESSIONS
#define WARRANT_MAX_SESSIONS 65536 /* as session.h */
#endif

#define WARRANT_TP_INNER_OFF WARRANT_DATA_HEADER_LEN /* hop_count is 0 */

struct warrant_tp_binding {
	__u32 inner_src; /* network order: the workload address the INIT bound */
	__u32 inner_dst; /* network order: the destination workload's address */
	__u8 proto;      /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_ICMP */
	__u8 _pad0;
	__u16 port_lo;   /* host order, inclusive (TCP/UDP destination port) */
	__u16 port_hi;
	__u16 _pad1;
	__u32 ifindex;   /* destination workload's host-side veth */
	__u32 _pad2;
	/* the credential's packet rate (SPEC 6.1 step 10) as a GCRA bucket holding one
	 * second's worth, as the receiver's TokenBucket(rate, rate): */
	__u64 rate_interval_ns; /* ns per packet; 0: no rate, ~0: rate 0 (no DATA at all) */
	__u64 rate_tat;         /* theoretical arrival time, kernel clock (0: full bucket) */
};

#define WARRANT_TP_RATE_WINDOW_NS 1000000000ULL /* the bucket: one second's worth */

/* Step 10 for a transparent session: n wire packets (a whole train is n) against the
 * credential's rate.  Not atomic across CPUs (as the bad-MAC bucket): racing CPUs can
 * admit a few packets beyond the rate, never refuse within it. */
static __always_inline int warrant_tp_rate(struct warrant_tp_binding *b, __u64 now, __u32 n)
{
	__u64 t = b->rate_interval_ns;
	if (!t)
		return WARRANT_REASON_OK;
	if (t > WARRANT_TP_RATE_WINDOW_NS) /* rate 0, or below one packet a second */
		return WARRANT_REASON_RATE_LIMITED;
	__u64 tat = b->rate_tat > now ? b->rate_tat : now;
	__u64 next = tat + (__u64)n * t;
	if (next - now > WARRANT_TP_RATE_WINDOW_NS)
		return WARRANT_REASON_RATE_LIMITED;
	b->rate_tat = next;
	return WARRANT_REASON_OK;
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARRANT_MAX_SESSIONS);
	__type(key, __u64); /* session id bytes as on the wire */
	__type(value, struct warrant_tp_binding);
} warrant_tp_bindings SEC(".maps");

/* The inner packet's first 40 bytes. */
struct warrant_tp_scratch {
	__u64 w[WARRANT_TP_MAC_INNER_LEN / 8];
};

/* A train descriptor as on the wire (TP_TRAIN_DESC_LEN bytes, big-endian fields). */
struct warrant_tp_train {
	__u32 seq0;  /* inner TCP sequence number of segment 0 */
	__u16 mss;   /* TCP payload bytes per segment (0: a train of one unsegmented packet) */
	__u8 segs;   /* segments, 1..TP_TRAIN_MAX_SEGS */
	__u8 flags;  /* the super-packet's TCP flags */
};

_Static_assert(sizeof(struct warrant_tp_train) == WARRANT_TP_TRAIN_DESC_LEN, "descriptor");

/* What the receiver's transparent checks work on, per CPU (the verdict path has no stack
 * to spare): the inner bytes, and for a train everything its global check function
 * (warrant_xdp.c) reads and writes. */
struct warrant_tp_work {
	struct warrant_tp_scratch inner;
	struct warrant_tp_binding b;
	struct warrant_tp_train t;
	__u64 k0, k1, m0, m1, m2; /* the session's k_mac; header words as in warrant_tp_mac */
	__u64 tag[2];             /* out: the MAC over the template */
	__u32 inner_len;          /* bytes carried after the descriptor */
	__u32 gso;                /* the skb's segment size when it holds a whole train */
	__u32 first, count;       /* out: the train's wire packets this one is */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct warrant_tp_work);
} warrant_tp_work SEC(".maps");

/* The inner packet's first 40 bytes into *out; 0 when the frame does not hold them
 * linearly (then the packet is refused: inner packets are at least 40 bytes). */
static __always_inline int warrant_tp_inner_copy(__u8 *inner, __u8 *data_end,
						 struct warrant_tp_scratch *out)
{
	if (inner + WARRANT_TP_MAC_INNER_LEN > data_end)
		return 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < WARRANT_TP_MAC_INNER_LEN / 8; i++)
		out->w[i] = *(__u64 *)(inner + 8 * i);
	return 1;
}

/* SipHash-2-4-128 over the 60-byte transparent MAC input: hdr20 is bytes [0,20) of the
 * header as three little-endian words (m0, m1, m2 low 32 bits, hop_count already 0). */
static __always_inline void warrant_tp_mac(__u64 k0, __u64 k1, __u64 m0, __u64 m1, __u64 m2,
					   struct warrant_tp_scratch *inner, __u64 out[2])
{
	__u64 *w = inner->w;
	WARRANT_SIP_INIT(k0, k1);
	v1 ^= 0xee; /* 128-bit output variant */
	WARRANT_SIP_BLOCK(m0);
	WARRANT_SIP_BLOCK(m1);
	/* bytes [16,24): header bytes 16..19, then inner bytes 0..3 */
	WARRANT_SIP_BLOCK(m2 | (w[0] << 32));
	WARRANT_SIP_BLOCK((w[0] >> 32) | (w[1] << 32));
	WARRANT_SIP_BLOCK((w[1] >> 32) | (w[2] << 32));
	WARRANT_SIP_BLOCK((w[2] >> 32) | (w[3] << 32));
	WARRANT_SIP_BLOCK((w[3] >> 32) | (w[4] << 32));
	/* bytes [56,60): inner bytes 36..39, and the length byte */
	WARRANT_SIP_BLOCK((w[4] >> 32) | ((__u64)WARRANT_TP_MAC_INPUT_LEN << 56));
	v2 ^= 0xee;
	WARRANT_SIP_FINAL4;
	out[0] = v0 ^ v1 ^ v2 ^ v3;
	v1 ^= 0xdd;
	WARRANT_SIP_FINAL4;
	out[1] = v0 ^ v1 ^ v2 ^ v3;
}

#define WARRANT_TCP_FIN 0x01
#define WARRANT_TCP_PSH 0x08
#define WARRANT_TCP_CWR 0x80

/* The template in place (SPEC 13.7): what segmentation changes is zeroed (IPv4 total
 * length, identification, checksum; UDP length and checksum; TCP checksum) or put back
 * as segment 0 of the train had it (TCP sequence number, flags).  Checksums are left
 * out because a packet with checksum offload carries only a partial one until a device
 * completes it; the MAC was never an integrity check of the payload (13.1). */
static __always_inline void warrant_tp_train_template(struct warrant_tp_scratch *s,
						      struct warrant_tp_train *t)
{
	__u8 *in = (__u8 *)s->w;
	*(__u16 *)(in + 2) = 0;
	*(__u16 *)(in + 4) = 0;
	*(__u16 *)(in + 10) = 0;
	if (in[9] == IPPROTO_TCP) {
		*(__u32 *)(in + 24) = t->seq0;
		in[33] = t->flags;
		*(__u16 *)(in + 36) = 0;
	} else if (in[9] == IPPROTO_UDP) {
		*(__u32 *)(in + 24) = 0;
	}
}

/* SipHash-2-4-128 over the 68-byte train MAC input: header bytes [0,20) (m0, m1, m2 as
 * in warrant_tp_mac), the descriptor (8 bytes as loaded), the template (40 bytes). */
static __always_inline void warrant_tp_train_mac(__u64 k0, __u64 k1, __u64 m0, __u64 m1,
						 __u64 m2, __u64 desc,
						 struct warrant_tp_scratch *tmpl, __u64 out[2])
{
	__u64 *w = tmpl->w;
	WARRANT_SIP_INIT(k0, k1);
	v1 ^= 0xee;
	WARRANT_SIP_BLOCK(m0);
	WARRANT_SIP_BLOCK(m1);
	WARRANT_SIP_BLOCK(m2 | (desc << 32));
	WARRANT_SIP_BLOCK((desc >> 32) | (w[0] << 32));
	WARRANT_SIP_BLOCK((w[0] >> 32) | (w[1] << 32));
	WARRANT_SIP_BLOCK((w[1] >> 32) | (w[2] << 32));
	WARRANT_SIP_BLOCK((w[2] >> 32) | (w[3] << 32));
	WARRANT_SIP_BLOCK((w[3] >> 32) | (w[4] << 32));
	WARRANT_SIP_BLOCK((w[4] >> 32) | ((__u64)WARRANT_TP_TRAIN_MAC_INPUT_LEN << 56));
	v2 ^= 0xee;
	WARRANT_SIP_FINAL4;
	out[0] = v0 ^ v1 ^ v2 ^ v3;
	v1 ^= 0xdd;
	WARRANT_SIP_FINAL4;
	out[1] = v0 ^ v1 ^ v2 ^ v3;
}

/* Where this inner packet sits in its train: wire packets [*first, *first + *count).
 * gso_size: the skb's segment size (0: one wire packet).  A whole train in one skb
 * (never cut: a veth path) is places 0..segs-1; a single piece is placed by its TCP
 * sequence number and must look exactly as segmentation leaves piece i (payload mss
 * but the last; FIN and PSH on the last only; CWR kept on the first, on later ones kept
 * or cleared).  Returns 0 for a packet no segmentation of the described train makes:
 * the caller refuses it as BAD_MAC (only a holder of k_mac stamps a descriptor).
 * Reads the inner bytes from scratch before the template overwrites them. */
static __always_inline int warrant_tp_train_place(struct warrant_tp_train *t,
						  struct warrant_tp_scratch *s, __u32 gso_size,
						  __u32 *first, __u32 *count)
{
	__u8 *in = (__u8 *)s->w;
	__u32 segs = t->segs, mss = bpf_ntohs(t->mss);
	*first = 0;
	*count = 1;
	if (segs == 0)
		return 0;
	if (in[9] != IPPROTO_TCP) /* only TCP is segmented into trains */
		return segs == 1 && !mss && !t->seq0 && !t->flags;
	__u32 tot = (__u32)in[2] << 8 | in[3], thl = (__u32)(in[32] >> 4) * 4;
	if (thl < 20 || tot < 20 + thl)
		return 0;
	__u32 payload = tot - 20 - thl;
	__u32 off = bpf_ntohl(*(__u32 *)(in + 24)) - bpf_ntohl(t->seq0);
	__u8 f = in[33], full = t->flags;
	if (segs == 1) /* one wire packet; a GSO skb holding it must hold only it (5a) */
		return !mss && !off && f == full;
	if (!mss)
		return 0;
	if (gso_size) { /* the whole train, uncut */
		*count = segs;
		return gso_size == mss && !off && f == full && payload > (segs - 1) * mss &&
		       payload <= segs * mss;
	}
	if (off % mss)
		return 0;
	__u32 i = off / mss;
	if (i >= segs)
		return 0;
	*first = i;
	__u8 want = full;
	if (i < segs - 1) {
		want &= ~(WARRANT_TCP_FIN | WARRANT_TCP_PSH);
		if (payload != mss)
			return 0;
	} else if (payload == 0 || payload > mss) {
		return 0;
	}
	return f == want || (i > 0 && f == (want & ~WARRANT_TCP_CWR));
}

/* The inner packet against the session's binding (SPEC 13.3), in the reference's order:
 * not IPv4 without options, shorter than TP_INNER_MIN (24), or carried in other than
 * max(total length, 40) bytes -> INNER_NOT_GRANTED; source ->
 * INNER_SOURCE_MISMATCH; destination, protocol, fragment, port -> INNER_NOT_GRANTED. */
static __always_inline int warrant_tp_inner_check(struct warrant_tp_binding *b,
						  struct warrant_tp_scratch *scratch,
						  __u32 inner_len)
{
	__u8 *in = (__u8 *)scratch->w;
	/* the wire carries max(total length, 40) bytes: shorter packets zero-padded */
	__u32 tot = (__u32)in[2] << 8 | in[3];
	if (in[0] != 0x45 || tot < WARRANT_TP_INNER_MIN ||
	    inner_len != (tot < WARRANT_TP_MAC_INNER_LEN ? WARRANT_TP_MAC_INNER_LEN : tot))
		return WARRANT_REASON_INNER_NOT_GRANTED;
	if (*(__u32 *)(in + 12) != b->inner_src)
		return WARRANT_REASON_INNER_SOURCE_MISMATCH;
	if (*(__u32 *)(in + 16) != b->inner_dst || in[9] != b->proto)
		return WARRANT_REASON_INNER_NOT_GRANTED;
	if (b->proto != IPPROTO_TCP && b->proto != IPPROTO_UDP)
		return WARRANT_REASON_OK;
	/* ports: only in a whole datagram (MF clear, offset 0) */
	if (((__u32)in[6] << 8 | in[7]) & 0x3FFF)
		return WARRANT_REASON_INNER_NOT_GRANTED;
	__u16 dport = (__u16)in[22] << 8 | in[23];
	if (dport < b->port_lo || dport > b->port_hi)
		return WARRANT_REASON_INNER_NOT_GRANTED;
	return WARRANT_REASON_OK;
}

#endif
