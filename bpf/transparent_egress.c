// SPDX-License-Identifier: Apache-2.0
/* transparent_egress.c: a workload's packets leave as Warrant DATA (SPEC 13.2).
 *
 * Attached at TC ingress of a workload's host-side veth (what the workload sends).  For
 * an IPv4 packet from a registered workload (warrant_tp_workloads: ifindex -> its
 * address) to a destination prefix of a Warrant peer (warrant_tp_routes, LPM):
 *   - inner source not the workload's address        -> drop (TP_EG_SPOOFED)
 *   - GSO super-packet, too big, malformed, < 40 bytes -> drop (TP_EG_GSO, _TOO_BIG,
 *                                                       _MALFORMED), except that a
 *     workload in trains mode (WARRANT_TP_TRAINS) has each packet stamped as a segment
 *     train (SPEC 13.7): a TCP super-packet once for all its segments (TP_EG_TRAIN)
 *   - no live egress session for (veth, destination)   -> the packet goes to the agent
 *     through warrant_tp_punts and is dropped here (TP_EG_PUNT): the agent sends it as
 *     the 0-RTT payload of the INIT that opens the session, so it is not lost
 *   - else: encapsulate (outer IPv4 + UDP + DATA header with the session's next seq and
 *     the transparent MAC, encap.h) and redirect to the uplink (TP_EG_ENCAP).
 * Anything else (ARP, IPv6, other destinations, unregistered veths) is not ours:
 * TC_ACT_UNSPEC, the next filter and the stack handle it.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "warrant_constants.h"
#include "encap.h"

char LICENSE[] SEC("license") = "GPL";

#define WARRANT_TP_TRAINS 0x4 /* trains mode: the workload keeps TSO and checksum offload;
				 * every packet leaves as a segment train (SPEC 13.7) */

struct warrant_tp_workload {
	__u32 addr; /* network order: the only inner source this veth may send */
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* ifindex of the host-side veth */
	__type(value, struct warrant_tp_workload);
} warrant_tp_workloads SEC(".maps");

struct warrant_tp_route_key {
	__u32 prefixlen;
	__u32 addr; /* network order */
};

struct warrant_tp_peer {
	__u32 node_addr;  /* network order: the peer node's Warrant address */
	__u32 local_addr; /* network order: this node's address on the uplink */
	__u16 port;       /* host order: the peer's Warrant port */
	__u16 sport;      /* host order: this agent's port (REJECTs come back to it) */
	__u32 uplink;     /* ifindex to send on */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct warrant_tp_route_key);
	__type(value, struct warrant_tp_peer);
} warrant_tp_routes SEC(".maps");

/* One session per workload, destination address, protocol and destination port: the
 * receiver binds a session to one destination workload, protocol and port range (SPEC
 * 13.3), so a second flow to another port or protocol needs a session of its own.
 * Ports from TP_EPHEMERAL_MIN up count as one (replies to clients' ephemeral ports). */
struct warrant_tp_egress_key {
	__u32 ifindex;
	__u32 daddr; /* network order: the inner destination */
	__u16 dport; /* host order; 0 for protocols without ports */
	__u8 proto;
	__u8 _pad;
};

struct warrant_tp_egress_session {
	__u64 sid;        /* session id bytes as on the wire */
	__u8 k_mac[16];
	__u64 next_seq;   /* taken with an atomic add: every CPU gets its own number */
	__u64 expires_ns; /* CLOCK_MONOTONIC_COARSE; the agent reopens before this */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct warrant_tp_egress_key);
	__type(value, struct warrant_tp_egress_session);
} warrant_tp_egress_sessions SEC(".maps");

struct warrant_tp_punt {
	__u32 ifindex;
	__u32 len;
	__u32 node_addr;
	__u16 port;
	__u16 headers_only; /* 1: data holds only the first TP_MAC_INNER_LEN bytes of a
			     * super-packet, to open the session with; the packet was dropped */
	__u8 data[WARRANT_TP_PUNT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} warrant_tp_punts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WARRANT_TP_EG_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} warrant_tp_egress_counters SEC(".maps");

static __always_inline int count(__u32 outcome, int action)
{
	__u64 *c = bpf_map_lookup_elem(&warrant_tp_egress_counters, &outcome);
	if (c)
		*c += 1;
	return action;
}

static __always_inline __u16 ip_checksum(__u16 *h)
{
	__u32 sum = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < 10; i++)
		sum += h[i];
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	return (__u16)~sum;
}

/* The 64 bytes put in front of the inner packet: outer IPv4, UDP, DATA header. */
struct warrant_tp_outer {
	struct iphdr ip;
	__u16 sport, dport, ulen, csum;
	__u8 head[4];
	__u64 sid;
	__u64 seq_be;
	__u64 mac[2];
};

_Static_assert(sizeof(struct warrant_tp_outer) == WARRANT_TP_ENCAP_OVERHEAD, "encap size");

struct warrant_tp_outer_train {
	struct warrant_tp_outer o;
	struct warrant_tp_train t;
};

static __always_inline void outer_headers(struct warrant_tp_outer *o, __u32 wire_len,
					  __u32 local_addr, __u32 node_addr, __u16 sport,
					  __u16 port)
{
	o->ip.version = 4;
	o->ip.ihl = 5;
	o->ip.tot_len = bpf_htons(wire_len);
	o->ip.frag_off = bpf_htons(0x4000); /* DF: Warrant datagrams are never fragmented */
	o->ip.ttl = 64;
	o->ip.protocol = IPPROTO_UDP;
	o->ip.saddr = local_addr;
	o->ip.daddr = node_addr;
	o->ip.check = ip_checksum((__u16 *)&o->ip);
	o->sport = bpf_htons(sport);
	o->dport = bpf_htons(port);
	o->ulen = bpf_htons(wire_len - 20);
}

/* Trains mode (SPEC 13.7): one stamp for the packet, or for every segment a TSO/GSO
 * super-packet will be cut into (gso: its segment size).  The skb is marked as a UDP
 * tunnel whose headers (outer IP, UDP, DATA header, descriptor) every segment copies,
 * so wherever it is segmented (a device without tunnel segmentation offload, or never
 * on an all-veth path) each wire packet carries the stamp and its own place in the
 * train.  Inner packets are at least 40 bytes here (TCP/UDP/ICMP with headers). */
static __always_inline int warrant_tp_stamp_train(struct __sk_buff *skb,
						  struct warrant_tp_egress_session *s,
						  __u8 *inner, __u8 *data_end, __u32 len,
						  __u32 gso, __u32 local_addr, __u32 node_addr,
						  __u16 sport, __u16 port, __u32 uplink)
{
	if (len < WARRANT_TP_MAC_INNER_LEN || inner + WARRANT_TP_MAC_INNER_LEN > data_end)
		return count(WARRANT_TP_EG_MALFORMED, TC_ACT_SHOT);
	struct warrant_tp_outer_train ot = {};
	struct warrant_tp_scratch w;
#pragma clang loop unroll(full)
	for (int i = 0; i < WARRANT_TP_MAC_INNER_LEN / 8; i++)
		w.w[i] = *(__u64 *)(inner + 8 * i);
	__u8 *in = (__u8 *)w.w;
	__u32 segs = 1;
	if (in[9] == IPPROTO_TCP) {
		ot.t.seq0 = *(__u32 *)(in + 24);
		ot.t.flags = in[33];
		if (gso) {
			__u32 thl = (__u32)(in[32] >> 4) * 4;
			if (thl < 20 || len < 20 + thl + 1)
				return count(WARRANT_TP_EG_MALFORMED, TC_ACT_SHOT);
			segs = (len - 20 - thl + gso - 1) / gso;
			if (segs > WARRANT_TP_TRAIN_MAX_SEGS || gso > 0xFFFF)
				return count(WARRANT_TP_EG_GSO, TC_ACT_SHOT);
			if (segs > 1)
				ot.t.mss = bpf_htons((__u16)gso);
		}
	}
	ot.t.segs = (__u8)segs;
	warrant_tp_train_template(&w, &ot.t);

	__u64 seq = __sync_fetch_and_add(&s->next_seq, segs);
	__u32 wire_len = len + WARRANT_TP_TRAIN_OVERHEAD;
	outer_headers(&ot.o, wire_len, local_addr, node_addr, sport, port);
	__u8 hflags = WARRANT_FLAG_DATA_INNER_IP | WARRANT_FLAG_DATA_TRAIN;
	ot.o.head[0] = WARRANT_VERSION;
	ot.o.head[1] = WARRANT_KIND_DATA;
	ot.o.head[2] = 0;
	ot.o.head[3] = hflags;
	ot.o.sid = s->sid;
	ot.o.seq_be = bpf_cpu_to_be64(seq);
	__u64 m0 = (__u64)WARRANT_VERSION | ((__u64)WARRANT_KIND_DATA << 8) |
		   ((__u64)hflags << 24) | ((s->sid & 0xFFFFFFFFULL) << 32);
	__u64 m1 = (s->sid >> 32) | ((ot.o.seq_be & 0xFFFFFFFFULL) << 32);
	__u64 m2 = ot.o.seq_be >> 32;
	warrant_tp_train_mac(*(__u64 *)s->k_mac, *(__u64 *)(s->k_mac + 8), m0, m1, m2,
			     *(__u64 *)&ot.t, &w, ot.o.mac);

	/* FIXED_GSO: the workload's MTU already leaves room for the 72 bytes, the segment
	 * size stays the train's mss.  ENCAP flags: segmentation copies the headers. */
	__u64 room = BPF_ADJ_ROOM_MAC;
	__u64 aflags = gso ? BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
				     BPF_F_ADJ_ROOM_ENCAP_L4_UDP
			   : 0;
	if (bpf_skb_adjust_room(skb, WARRANT_TP_TRAIN_OVERHEAD, room, aflags))
		return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &ot, sizeof(ot), 0))
		return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
	count(gso ? WARRANT_TP_EG_TRAIN : WARRANT_TP_EG_ENCAP, 0);
	return bpf_redirect_neigh(uplink, 0, 0, 0);
}

SEC("tc")
int warrant_tp_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct warrant_tp_workload *wl = bpf_map_lookup_elem(&warrant_tp_workloads, &ifindex);
	if (!wl || skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	__u32 len = skb->len - ETH_HLEN;
	__u32 flags = wl->flags, addr = wl->addr;
	if (len < WARRANT_TP_INNER_MIN)
		return count(WARRANT_TP_EG_MALFORMED, TC_ACT_SHOT);
	__u32 gso = (flags & WARRANT_TP_TRAINS) ? skb->gso_size : 0;
	if (len > WARRANT_TP_PUNT_MAX && !gso)
		return count(WARRANT_TP_EG_TOO_BIG, TC_ACT_SHOT);
	if (bpf_skb_pull_data(skb, ETH_HLEN + WARRANT_TP_INNER_MIN))
		return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *data_end = (__u8 *)(long)skb->data_end;
	__u8 *inner = data + ETH_HLEN;
	if (inner + WARRANT_TP_INNER_MIN > data_end)
		return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
	struct iphdr *ip = (struct iphdr *)inner;

	struct warrant_tp_route_key rk = {.prefixlen = 32, .addr = ip->daddr};
	struct warrant_tp_peer *peer = bpf_map_lookup_elem(&warrant_tp_routes, &rk);
	if (!peer)
		return TC_ACT_UNSPEC; /* not for a Warrant peer: routed as usual */
	if (ip->saddr != addr)
		return count(WARRANT_TP_EG_SPOOFED, TC_ACT_SHOT);
	if (skb->gso_segs > 1 && !gso)
		return count(WARRANT_TP_EG_GSO, TC_ACT_SHOT);
	if (inner[0] != 0x45 || bpf_ntohs(ip->tot_len) != len)
		return count(WARRANT_TP_EG_MALFORMED, TC_ACT_SHOT);
	/* a train is TCP, fits one outer datagram and the descriptor's segment count */
	if (gso && (ip->protocol != IPPROTO_TCP || len + WARRANT_TP_TRAIN_OVERHEAD > 0xFFFF))
		return count(WARRANT_TP_EG_GSO, TC_ACT_SHOT);

	struct warrant_tp_egress_key ek = {.ifindex = ifindex, .daddr = ip->daddr,
					   .proto = ip->protocol};
	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP)
		ek.dport = ((__u16)inner[22] << 8) | inner[23]; /* ihl is 5: checked above */
	if (ek.dport >= WARRANT_TP_EPHEMERAL_MIN) /* one session for the ephemeral range */
		ek.dport = WARRANT_TP_EPHEMERAL_MIN;
	__u32 node_addr = peer->node_addr, local_addr = peer->local_addr, uplink = peer->uplink;
	__u16 port = peer->port, sport = peer->sport;
	struct warrant_tp_egress_session *s = bpf_map_lookup_elem(&warrant_tp_egress_sessions, &ek);
	if (!s || bpf_ktime_get_coarse_ns() >= s->expires_ns) {
		/* A super-packet cannot travel in an INIT (the agent reopens sessions before
		 * they expire, so this follows a REJECT): its headers go to the agent, which
		 * opens the session with them (a probe, SPEC 13.2), and TCP sends the data
		 * again. */
		__u16 headers_only = gso != 0;
		if (headers_only)
			len = WARRANT_TP_MAC_INNER_LEN;
		if (len > WARRANT_TP_PUNT_MAX) /* for the verifier: checked above */
			return count(WARRANT_TP_EG_TOO_BIG, TC_ACT_SHOT);
		struct warrant_tp_punt *p = bpf_ringbuf_reserve(&warrant_tp_punts, sizeof(*p), 0);
		if (!p)
			return count(WARRANT_TP_EG_PUNT_LOST, TC_ACT_SHOT);
		p->ifindex = ifindex;
		p->node_addr = node_addr;
		p->port = port;
		p->headers_only = headers_only;
		p->len = len;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, p->data, len)) {
			bpf_ringbuf_discard(p, 0);
			return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
		}
		bpf_ringbuf_submit(p, 0);
		return count(WARRANT_TP_EG_PUNT, TC_ACT_SHOT);
	}

	if (flags & WARRANT_TP_TRAINS)
		return warrant_tp_stamp_train(skb, s, inner, data_end, len, gso, local_addr,
					      node_addr, sport, port, uplink);

	/* An inner packet shorter than the 40 bytes the MAC covers travels zero-padded to 40
	 * (its IPv4 total length is kept: the receiving stack trims the padding, SPEC 13.1).
	 * The grown tail is not zeroed by the kernel: the words are masked here and written
	 * back, so no stale memory leaves the host. */
	__u32 wire_len = len;
	if (len < WARRANT_TP_MAC_INNER_LEN) {
		wire_len = WARRANT_TP_MAC_INNER_LEN;
		if (bpf_skb_change_tail(skb, ETH_HLEN + wire_len, 0) ||
		    bpf_skb_pull_data(skb, ETH_HLEN + wire_len))
			return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
		data = (__u8 *)(long)skb->data;
		data_end = (__u8 *)(long)skb->data_end;
		inner = data + ETH_HLEN;
	}
	if (inner + WARRANT_TP_MAC_INNER_LEN > data_end)
		return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
	struct warrant_tp_scratch w;
#pragma clang loop unroll(full)
	for (int i = 0; i < WARRANT_TP_MAC_INNER_LEN / 8; i++) {
		__u64 word = *(__u64 *)(inner + 8 * i);
		if (len < 8 * (__u32)(i + 1))
			word = len <= 8 * (__u32)i ? 0 : word & ((1ULL << (8 * (len - 8 * i))) - 1);
		w.w[i] = word;
	}
	if (wire_len != len && bpf_skb_store_bytes(skb, ETH_HLEN, &w, sizeof(w), 0))
		return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
	len = wire_len;

	struct warrant_tp_outer o = {};
	__u64 seq = __sync_fetch_and_add(&s->next_seq, 1);
	o.ip.version = 4;
	o.ip.ihl = 5;
	o.ip.tot_len = bpf_htons(len + WARRANT_TP_ENCAP_OVERHEAD);
	o.ip.frag_off = bpf_htons(0x4000); /* DF: Warrant datagrams are never fragmented */
	o.ip.ttl = 64;
	o.ip.protocol = IPPROTO_UDP;
	o.ip.saddr = local_addr;
	o.ip.daddr = node_addr;
	o.ip.check = ip_checksum((__u16 *)&o.ip);
	o.sport = bpf_htons(sport);
	o.dport = bpf_htons(port);
	o.ulen = bpf_htons(len + WARRANT_TP_ENCAP_OVERHEAD - 20);
	o.head[0] = WARRANT_VERSION;
	o.head[1] = WARRANT_KIND_DATA;
	o.head[2] = 0;
	o.head[3] = WARRANT_FLAG_DATA_INNER_IP;
	o.sid = s->sid;
	o.seq_be = bpf_cpu_to_be64(seq);
	__u64 m0 = (__u64)WARRANT_VERSION | ((__u64)WARRANT_KIND_DATA << 8) |
		   ((__u64)WARRANT_FLAG_DATA_INNER_IP << 24) | ((s->sid & 0xFFFFFFFFULL) << 32);
	__u64 m1 = (s->sid >> 32) | ((o.seq_be & 0xFFFFFFFFULL) << 32);
	__u64 m2 = o.seq_be >> 32;
	warrant_tp_mac(*(__u64 *)s->k_mac, *(__u64 *)(s->k_mac + 8), m0, m1, m2, &w, o.mac);

	/* No ENCAP flags: they only serve GSO (dropped above), and an skb marked as
	 * encapsulated that the receiver turns into a REJECT was never transmitted. */
	if (bpf_skb_adjust_room(skb, WARRANT_TP_ENCAP_OVERHEAD, BPF_ADJ_ROOM_MAC, 0))
		return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &o, sizeof(o), 0))
		return count(WARRANT_TP_EG_ERROR, TC_ACT_SHOT);
	count(WARRANT_TP_EG_ENCAP, 0);
	return bpf_redirect_neigh(uplink, 0, 0, 0);
}
