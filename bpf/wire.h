/* wire.h: bounded parse of Ethernet / IPv4 or IPv6 / UDP and of the Warrant DATA header.
 *
 * Mirrors src/warrant/core/wire.py (DataPacket.decode, peek_kind) and, for the frame
 * around it, src/warrant/datapath/wire.py (parse_frame).  Every read is preceded by an
 * explicit bounds check against data_end; lengths that decide reasons come from the IP
 * and UDP headers, never from the frame end (Ethernet pads short frames).
 *
 * Frame policy (SPEC 3, "What is Warrant traffic"; docs/datapath.md):
 *   - up to DP_MAX_VLAN_TAGS 802.1Q/802.1ad tags are skipped; a deeper stack may hide
 *     a Warrant port: DROP, UNPARSED_FRAME;
 *   - not IPv4/IPv6, not UDP, a non-first fragment (no UDP header in it), or a frame too
 *     short to hold its headers: not ours to judge -> PASS, NOT_WARRANT;
 *   - IPv6: Hop-by-Hop, Routing, Destination Options and Fragment headers are walked (at
 *     most DP_MAX_IPV6_EXT) to find UDP; a longer chain -> DROP, UNPARSED_FRAME;
 *   - a UDP header that ends beyond DP_PARSE_HORIZON bytes -> DROP, UNPARSED_FRAME;
 *   - UDP to a port outside the Warrant port map -> PASS, NOT_WARRANT;
 *   - UDP to a Warrant port in a first fragment (IPv4 MF, IPv6 Fragment header) ->
 *     DROP, FRAGMENTED; with IPv4 options or any IPv6 extension header, or with an
 *     IP length beyond the frame, or a UDP length other than the IP payload's ->
 *     DROP, MALFORMED.
 * Whether the frame is several datagrams merged (GRO/GSO) is decided by the caller
 * after this parse (warrant_xdp.c: MERGED_FRAME).
 */
#ifndef WARRANT_WIRE_H
#define WARRANT_WIRE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "warrant_constants.h"

#define WARRANT_ETH_P_8021Q 0x8100
#define WARRANT_ETH_P_8021AD 0x88A8
#define WARRANT_IP_MF 0x2000
#define WARRANT_IP_OFFSET 0x1FFF
#define WARRANT_UDP_HLEN 8
#define WARRANT_IPV4_HLEN 20
#define WARRANT_IPV6_HLEN 40
#define WARRANT_IP6_FRAG_OFFSET 0xFFF8 /* fragment offset bits of the Fragment header */
#define WARRANT_NEXTHDR_HOP 0
#define WARRANT_NEXTHDR_ROUTING 43
#define WARRANT_NEXTHDR_FRAGMENT 44
#define WARRANT_NEXTHDR_DEST 60

/* Which UDP ports are Warrant ports: a bitmap over the 65536 port numbers, in a
 * single-entry array filled by the loader.  An array lookup is inlined by the
 * verifier, a hash lookup is a call and a jhash: this check runs for every UDP
 * frame on the interface, so it must cost next to nothing. */
#define WARRANT_PORT_WORDS (65536 / 64)

struct warrant_port_set {
	__u64 bits[WARRANT_PORT_WORDS]; /* bit p set: UDP destination port p is Warrant's */
};

/* Global data: libbpf makes the section a one-entry array map (".bss.warrant_ports",
 * written whole by user space: loader.set_ports), and the program reads it at a fixed
 * address, with no lookup.  Every frame is checked against it. */
struct warrant_port_set warrant_ports SEC(".bss.warrant_ports");

static __always_inline int warrant_is_port(__u16 port)
{
	return (warrant_ports.bits[(port >> 6) & (WARRANT_PORT_WORDS - 1)] >> (port & 63)) & 1;
}

/* Where a frame's Warrant packet is, and the addressing around it. */
struct warrant_frame {
	__u32 l3_off;     /* offset of the IP header: 14, 18 or 22 (two VLAN tags) */
	__u8 *payload;    /* first byte of the UDP payload (the Warrant packet) */
	__u32 len;        /* UDP payload length from the UDP header */
	__u32 ip_len;     /* the IP packet's length by its header (IPv4 tot_len, 40 + IPv6 plen) */
	__u32 saddr;      /* IPv4 source, network order (0 for IPv6) */
	__u32 daddr;      /* IPv4 destination, network order (0 for IPv6) */
	__u16 sport;      /* host order */
	__u16 dport;      /* host order */
	__u8 ipv6;        /* 1: IPv6 (addresses at l3_off + 8 and + 24) */
};

/* The UDP ports, and whether the datagram is Warrant's.  The source port is read past
 * the port check (other traffic does not pay for it) and before any check that can drop
 * the frame, so every drop's event names its sender's port. */
static __always_inline int warrant_udp_ports(struct udphdr *udp, struct warrant_frame *f)
{
	f->dport = bpf_ntohs(udp->dest);
	if (!warrant_is_port(f->dport))
		return 0;
	f->sport = bpf_ntohs(udp->source);
	return 1;
}

/* Where the UDP header must be readable: NOT_WARRANT when the frame ends before it (no
 * such datagram: the stack drops it too), UNPARSED_FRAME when it lies beyond the parse
 * horizon, or beyond what is linear (never after a successful TC pull). */
static __always_inline int warrant_udp_reachable(__u8 *data, __u8 *data_end, __u32 pkt_len,
						 __u32 udp_off)
{
	if (udp_off + WARRANT_UDP_HLEN > pkt_len)
		return WARRANT_REASON_NOT_WARRANT;
	if (udp_off + WARRANT_UDP_HLEN > WARRANT_DP_PARSE_HORIZON)
		return WARRANT_REASON_UNPARSED_FRAME;
	if (data + udp_off + WARRANT_UDP_HLEN > data_end)
		return WARRANT_REASON_UNPARSED_FRAME;
	return WARRANT_REASON_OK;
}

/* UDP to a Warrant port: the checks shared by both IP versions.  l4_len is the IP
 * payload length by the IP header; the UDP length must be exactly that (a shorter one
 * would leave bytes no check reads: merged or padded datagrams). */
static __always_inline int warrant_udp_lengths(__u8 *data, __u32 udp_off, __u32 l4_len,
					       struct udphdr *udp, struct warrant_frame *f)
{
	__u32 ulen = bpf_ntohs(udp->len);
	if (l4_len < WARRANT_UDP_HLEN || ulen != l4_len)
		return WARRANT_REASON_MALFORMED;
	f->payload = data + udp_off + WARRANT_UDP_HLEN;
	f->len = ulen - WARRANT_UDP_HLEN;
	return WARRANT_REASON_OK;
}

static __always_inline int warrant_parse_ipv4(__u8 *data, __u8 *data_end, __u32 pkt_len,
					      __u32 l3, struct warrant_frame *f)
{
	struct iphdr *ip = (struct iphdr *)(data + l3);
	if ((__u8 *)ip + WARRANT_IPV4_HLEN > data_end)
		return WARRANT_REASON_NOT_WARRANT;
	if (ip->version != 4 || ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
		return WARRANT_REASON_NOT_WARRANT;
	__u16 frag = bpf_ntohs(ip->frag_off);
	if (frag & WARRANT_IP_OFFSET)
		return WARRANT_REASON_NOT_WARRANT; /* no UDP header here; its first is dropped */

	__u32 ihl = ip->ihl * 4;
	__u32 udp_off = l3 + ihl;
	int reason = warrant_udp_reachable(data, data_end, pkt_len, udp_off);
	if (reason != WARRANT_REASON_OK)
		return reason;
	struct udphdr *udp = (struct udphdr *)(data + udp_off);
	if ((__u8 *)udp + WARRANT_UDP_HLEN > data_end) /* restated for the verifier */
		return WARRANT_REASON_UNPARSED_FRAME;
	if (!warrant_udp_ports(udp, f))
		return WARRANT_REASON_NOT_WARRANT;

	/* Warrant traffic from here on: anything odd is a drop. */
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	if (frag & WARRANT_IP_MF)
		return WARRANT_REASON_FRAGMENTED;
	if (ihl != WARRANT_IPV4_HLEN)
		return WARRANT_REASON_MALFORMED;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (tot < WARRANT_IPV4_HLEN || l3 + tot > pkt_len)
		return WARRANT_REASON_MALFORMED;
	f->ip_len = tot;
	return warrant_udp_lengths(data, udp_off, tot - WARRANT_IPV4_HLEN, udp, f);
}

static __always_inline int warrant_parse_ipv6(__u8 *data, __u8 *data_end, __u32 pkt_len,
					      __u32 l3, struct warrant_frame *f)
{
	struct ipv6hdr *ip6 = (struct ipv6hdr *)(data + l3);
	if ((__u8 *)ip6 + WARRANT_IPV6_HLEN > data_end)
		return WARRANT_REASON_NOT_WARRANT;
	if (ip6->version != 6)
		return WARRANT_REASON_NOT_WARRANT;
	__u8 nh = ip6->nexthdr;
	__u32 off = l3 + WARRANT_IPV6_HLEN;
	__u32 ext = 0;  /* extension headers walked */
	__u32 frag = 0; /* a Fragment header with offset 0 was among them */

#pragma clang loop unroll(full)
	for (int i = 0; i < WARRANT_DP_MAX_IPV6_EXT; i++) {
		if (nh != WARRANT_NEXTHDR_HOP && nh != WARRANT_NEXTHDR_ROUTING &&
		    nh != WARRANT_NEXTHDR_DEST && nh != WARRANT_NEXTHDR_FRAGMENT)
			break;
		/* every walked header has its next-header and length in its first 8 bytes */
		if (off + 8 > pkt_len)
			return WARRANT_REASON_NOT_WARRANT;
		if (off + 8 > WARRANT_DP_PARSE_HORIZON)
			return WARRANT_REASON_UNPARSED_FRAME;
		__u8 *h = data + off;
		if (h + 8 > data_end)
			return WARRANT_REASON_UNPARSED_FRAME;
		if (nh == WARRANT_NEXTHDR_FRAGMENT) {
			if (bpf_ntohs(*(__u16 *)(h + 2)) & WARRANT_IP6_FRAG_OFFSET)
				return WARRANT_REASON_NOT_WARRANT; /* as IPv4: no UDP header here */
			frag = 1;
			off += 8;
		} else {
			off += ((__u32)h[1] + 1) * 8;
		}
		nh = h[0];
		ext++;
	}
	if (nh == WARRANT_NEXTHDR_HOP || nh == WARRANT_NEXTHDR_ROUTING ||
	    nh == WARRANT_NEXTHDR_DEST || nh == WARRANT_NEXTHDR_FRAGMENT)
		return WARRANT_REASON_UNPARSED_FRAME; /* a longer chain: UDP may lie behind it */
	if (nh != IPPROTO_UDP)
		return WARRANT_REASON_NOT_WARRANT;

	int reason = warrant_udp_reachable(data, data_end, pkt_len, off);
	if (reason != WARRANT_REASON_OK)
		return reason;
	off &= 0xFFFF; /* bounded above by the horizon; the verifier needs to see a bound */
	struct udphdr *udp = (struct udphdr *)(data + off);
	if ((__u8 *)udp + WARRANT_UDP_HLEN > data_end)
		return WARRANT_REASON_UNPARSED_FRAME;
	if (!warrant_udp_ports(udp, f))
		return WARRANT_REASON_NOT_WARRANT;

	/* Warrant traffic from here on.  saddr/daddr stay 0: an event record reads an
	 * IPv6 frame's addresses from its header when (and only when) it is emitted. */
	f->ipv6 = 1;
	if (frag)
		return WARRANT_REASON_FRAGMENTED;
	if (ext)
		return WARRANT_REASON_MALFORMED;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	if (l3 + WARRANT_IPV6_HLEN + plen > pkt_len)
		return WARRANT_REASON_MALFORMED;
	f->ip_len = WARRANT_IPV6_HLEN + plen;
	return warrant_udp_lengths(data, off, plen, udp, f);
}

/* Locate the Warrant packet in a frame.  Returns WARRANT_REASON_OK with *f filled,
 * WARRANT_REASON_NOT_WARRANT (pass), or a reason to drop (UNPARSED_FRAME, FRAGMENTED,
 * MALFORMED).  pkt_len is the frame's full length (it may exceed data_end - data for
 * TC non-linear skbs; the caller has made the first DP_PARSE_HORIZON bytes linear). */
static __always_inline int warrant_parse_frame(__u8 *data, __u8 *data_end, __u32 pkt_len,
					       struct warrant_frame *f)
{
	__u32 l3 = sizeof(struct ethhdr); /* an integer, not a pointer difference: bounded */
	__u16 proto;

	if (data + sizeof(struct ethhdr) > data_end)
		return WARRANT_REASON_NOT_WARRANT;
	proto = ((struct ethhdr *)data)->h_proto;
	/* The common frame first: untagged IPv4 without options, not a fragment, its UDP
	 * header linear.  The walk below reaches the same reasons for it, with more
	 * instructions; every other frame takes the walk. */
	struct iphdr *ip = (struct iphdr *)(data + sizeof(struct ethhdr));
	struct udphdr *udp = (struct udphdr *)(ip + 1);
	if (proto == bpf_htons(ETH_P_IP) && (__u8 *)(udp + 1) <= data_end &&
	    *(__u8 *)ip == 0x45 && ip->protocol == IPPROTO_UDP &&
	    !(ip->frag_off & bpf_htons(WARRANT_IP_MF | WARRANT_IP_OFFSET))) {
		f->l3_off = sizeof(struct ethhdr);
		if (!warrant_udp_ports(udp, f))
			return WARRANT_REASON_NOT_WARRANT;
		f->saddr = ip->saddr;
		f->daddr = ip->daddr;
		__u32 tot = bpf_ntohs(ip->tot_len);
		if (tot < WARRANT_IPV4_HLEN || sizeof(struct ethhdr) + tot > pkt_len)
			return WARRANT_REASON_MALFORMED;
		f->ip_len = tot;
		return warrant_udp_lengths(data, sizeof(struct ethhdr) + WARRANT_IPV4_HLEN,
					   tot - WARRANT_IPV4_HLEN, udp, f);
	}
#pragma clang loop unroll(full)
	for (int i = 0; i < WARRANT_DP_MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(WARRANT_ETH_P_8021Q) &&
		    proto != bpf_htons(WARRANT_ETH_P_8021AD))
			break;
		if (data + l3 + 4 > data_end)
			return WARRANT_REASON_NOT_WARRANT;
		proto = *(__u16 *)(data + l3 + 2);
		l3 += 4;
	}
	if (proto == bpf_htons(WARRANT_ETH_P_8021Q) || proto == bpf_htons(WARRANT_ETH_P_8021AD))
		return WARRANT_REASON_UNPARSED_FRAME;
	f->l3_off = l3;
	if (proto == bpf_htons(ETH_P_IP))
		return warrant_parse_ipv4(data, data_end, pkt_len, l3, f);
	if (proto == bpf_htons(ETH_P_IPV6))
		return warrant_parse_ipv6(data, data_end, pkt_len, l3, f);
	return WARRANT_REASON_NOT_WARRANT;
}

/* The DATA header as the core needs it. */
struct warrant_data {
	__u8 *pkt;        /* start of the Warrant packet */
	__u8 kind;
	__u8 hop_count;
	__u64 session_id; /* raw 8 bytes as loaded (map key) */
	__u64 seq;        /* host order */
};

/* SPEC 3 / 6.1 step 1, in the order of wire.py: TRUNCATED (common header),
 * UNKNOWN_VERSION, UNKNOWN_KIND, MALFORMED (hop count, flags), TRUNCATED (lengths).
 * An INIT returns WARRANT_REASON_OK with d->kind == INIT: user space decides it. */
static __always_inline int warrant_parse_data(__u8 *pkt, __u32 len, __u8 *data_end,
					      struct warrant_data *d)
{
	d->pkt = pkt;
	if (len < WARRANT_COMMON_HEADER_LEN)
		return WARRANT_REASON_TRUNCATED;
	if (pkt + WARRANT_COMMON_HEADER_LEN > data_end)
		return WARRANT_REASON_TRUNCATED;
	if (pkt[WARRANT_OFF_VERSION] != WARRANT_VERSION)
		return WARRANT_REASON_UNKNOWN_VERSION;
	d->kind = pkt[WARRANT_OFF_KIND];
	if (d->kind == WARRANT_KIND_INIT)
		return WARRANT_REASON_OK;
	if (d->kind != WARRANT_KIND_DATA)
		return WARRANT_REASON_UNKNOWN_KIND;
	d->hop_count = pkt[WARRANT_OFF_HOP_COUNT];
	if (d->hop_count > WARRANT_MAX_HOPS)
		return WARRANT_REASON_MALFORMED;
	if (pkt[WARRANT_OFF_FLAGS] & ~WARRANT_KNOWN_DATA_FLAGS & 0xFF)
		return WARRANT_REASON_MALFORMED;
	if ((pkt[WARRANT_OFF_FLAGS] & (WARRANT_FLAG_DATA_TRAIN | WARRANT_FLAG_DATA_INNER_IP)) ==
	    WARRANT_FLAG_DATA_TRAIN) /* a train is transparent DATA (SPEC 13.7) */
		return WARRANT_REASON_MALFORMED;
	if (len < WARRANT_DATA_HEADER_LEN + (__u32)d->hop_count * WARRANT_HOP_RECORD_LEN +
			  WARRANT_AEAD_TAG_LEN)
		return WARRANT_REASON_TRUNCATED;
	/* The UDP length said the bytes are there; the frame must hold them linearly. */
	if (pkt + WARRANT_DATA_HEADER_LEN > data_end)
		return WARRANT_REASON_MALFORMED;
	d->session_id = *(__u64 *)(pkt + WARRANT_OFF_SESSION_ID);
	d->seq = bpf_be64_to_cpu(*(__u64 *)(pkt + WARRANT_OFF_SEQ));
	return WARRANT_REASON_OK;
}

#endif
