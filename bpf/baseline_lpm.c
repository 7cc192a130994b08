// SPDX-License-Identifier: Apache-2.0
/* baseline_lpm.c: a Cilium-like identity check, for bench/datapath.py.
 *
 * What an IP-identity datapath does per packet: parse Ethernet/IPv4/UDP, resolve
 * the source address to a numeric identity in an LPM trie (Cilium's ipcache),
 * look up (identity, destination port, protocol) in a policy hash map, count the
 * verdict in a per-CPU array (Cilium's metrics map) and pass or drop.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct ipcache_key {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, __u32); /* identity */
} baseline_ipcache SEC(".maps");

struct policy_key {
	__u32 identity;
	__u16 dport;
	__u8 proto;
	__u8 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct policy_key);
	__type(value, __u8); /* 1 allow */
} baseline_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} baseline_metrics SEC(".maps");

static __always_inline int count(__u32 slot, int action)
{
	__u64 *c = bpf_map_lookup_elem(&baseline_metrics, &slot);
	if (c)
		*c += 1;
	return action;
}

SEC("xdp")
int baseline_lpm(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;

	struct ipcache_key k = {.prefixlen = 32, .addr = ip->saddr};
	__u32 *identity = bpf_map_lookup_elem(&baseline_ipcache, &k);
	struct policy_key pk = {
		.identity = identity ? *identity : 2 /* world */,
		.dport = bpf_ntohs(udp->dest),
		.proto = IPPROTO_UDP,
	};
	__u8 *allow = bpf_map_lookup_elem(&baseline_policy, &pk);
	if (allow && *allow)
		return count(0, XDP_PASS);
	return count(1, XDP_DROP);
}
