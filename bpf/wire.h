/* wire.h: bounded parse of Ethernet / IPv4 / UDP and of the Warrant DATA header.
 *
 * Mirrors src/warrant/wire.py (DataPacket.decode, peek_kind) and, for the frame
 * around it, src/warrant/datapath/wire.py.  Every read is preceded by an explicit
 * bounds check against data_end; lengths that decide reasons come from the UDP
 * header, never from the frame end (Ethernet pads short frames).
 *
 * Frame policy (docs/datapath.md, "What is Warrant traffic"):
 *   - not IPv4, not UDP, a non-first IPv4 fragment, or a frame too short to hold
 *     the IPv4 and UDP headers: not ours to judge -> PASS, NOT_WARRANT;
 *   - UDP to a port outside the Warrant port map -> PASS, NOT_WARRANT;
 *   - UDP to a Warrant port carried in a first fragment, with IPv4 options, or
 *     with inconsistent IPv4/UDP lengths -> DROP, MALFORMED.
 * IPv6 is passed as NOT_WARRANT: bind Warrant sockets to IPv4 (docs/datapath.md).
 */
#ifndef WARRANT_WIRE_H
#define WARRANT_WIRE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
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

/* Which UDP ports are Warrant ports: a bitmap over the 65536 port numbers, in a
 * single-entry array filled by the loader.  An array lookup is inlined by the
 * verifier, a hash lookup is a call and a jhash: this check runs for every UDP
 * frame on the interface, so it must cost next to nothing. */
#define WARRANT_PORT_WORDS (65536 / 64)

struct warrant_port_set {
	__u64 bits[WARRANT_PORT_WORDS]; /* bit p set: UDP destination port p is Warrant's */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct warrant_port_set);
} warrant_ports SEC(".maps");

static __always_inline int warrant_is_port(__u16 port)
{
	__u32 zero = 0;
	struct warrant_port_set *set = bpf_map_lookup_elem(&warrant_ports, &zero);
	if (!set)
		return 0;
	return (set->bits[(port >> 6) & (WARRANT_PORT_WORDS - 1)] >> (port & 63)) & 1;
}

/* Where a frame's Warrant packet is, and the addressing around it. */
struct warrant_frame {
	__u32 l3_off;     /* offset of the IPv4 header: 14, or 18 after a VLAN tag */
	__u8 *payload;    /* first byte of the UDP payload (the Warrant packet) */
	__u32 len;        /* UDP payload length from the UDP header */
	__u32 saddr;      /* IPv4 source, network order */
	__u32 daddr;      /* IPv4 destination, network order */
	__u16 sport;      /* host order */
	__u16 dport;      /* host order */
};

/* Parse result codes of warrant_parse_frame (beyond WARRANT_REASON_*). */
#define WARRANT_FRAME_OK 0

/* Locate the Warrant packet in a frame.  Returns WARRANT_REASON_OK with *f filled,
 * WARRANT_REASON_NOT_WARRANT (pass), or WARRANT_REASON_MALFORMED (drop).
 * pkt_len is the frame's full length (it may exceed data_end - data for TC
 * non-linear skbs; the core then refuses to read past data_end). */
static __always_inline int warrant_parse_frame(__u8 *data, __u8 *data_end, __u32 pkt_len,
					       struct warrant_frame *f)
{
	__u8 *p = data;
	__u16 proto;

	if (p + sizeof(struct ethhdr) > data_end)
		return WARRANT_REASON_NOT_WARRANT;
	proto = ((struct ethhdr *)p)->h_proto;
	p += sizeof(struct ethhdr);
	if (proto == bpf_htons(WARRANT_ETH_P_8021Q) || proto == bpf_htons(WARRANT_ETH_P_8021AD)) {
		if (p + 4 > data_end)
			return WARRANT_REASON_NOT_WARRANT;
		proto = *(__u16 *)(p + 2);
		p += 4;
	}
	if (proto != bpf_htons(ETH_P_IP))
		return WARRANT_REASON_NOT_WARRANT;

	struct iphdr *ip = (struct iphdr *)p;
	if (p + WARRANT_IPV4_HLEN > data_end)
		return WARRANT_REASON_NOT_WARRANT;
	if (ip->version != 4 || ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
		return WARRANT_REASON_NOT_WARRANT;
	__u16 frag = bpf_ntohs(ip->frag_off);
	if (frag & WARRANT_IP_OFFSET)
		return WARRANT_REASON_NOT_WARRANT; /* no UDP header here; reassembly needs the first */

	__u32 ihl = ip->ihl * 4;
	struct udphdr *udp;
	if (ihl == WARRANT_IPV4_HLEN) {
		udp = (struct udphdr *)(p + WARRANT_IPV4_HLEN);
	} else {
		/* Options: find the port to decide whether this is ours at all. */
		udp = (struct udphdr *)(p + (ihl & 0x3C));
	}
	if ((__u8 *)udp + WARRANT_UDP_HLEN > data_end)
		return WARRANT_REASON_NOT_WARRANT;
	f->dport = bpf_ntohs(udp->dest);
	if (!warrant_is_port(f->dport))
		return WARRANT_REASON_NOT_WARRANT;

	/* Warrant traffic from here on: anything odd is a drop. */
	if (ihl != WARRANT_IPV4_HLEN || (frag & WARRANT_IP_MF))
		return WARRANT_REASON_MALFORMED;
	__u32 l3 = (__u32)(p - data);
	__u32 tot = bpf_ntohs(ip->tot_len);
	__u32 ulen = bpf_ntohs(udp->len);
	if (tot < WARRANT_IPV4_HLEN + WARRANT_UDP_HLEN || l3 + tot > pkt_len)
		return WARRANT_REASON_MALFORMED;
	if (ulen < WARRANT_UDP_HLEN || ulen > tot - WARRANT_IPV4_HLEN)
		return WARRANT_REASON_MALFORMED;
	f->l3_off = l3;
	f->payload = (__u8 *)udp + WARRANT_UDP_HLEN;
	f->len = ulen - WARRANT_UDP_HLEN;
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->sport = bpf_ntohs(udp->source);
	return WARRANT_REASON_OK;
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
