"""The agent's sockets and local addresses, without root: which families --host binds,
IPv6 missing from the host, the ingress ifindex of an IPv6 datagram, and the local
addresses (IPv4 from /proc/net/fib_trie, IPv6 from /proc/net/if_inet6) that mark DATA
sent from this host as a bypass.  tests/test_agent_ipv6.py runs it all under the kernel."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

import pytest

from warrant.datapath import agent as agent_mod
from warrant.datapath.agent import Agent, local_ipv4, local_ipv6, open_sockets

IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
fd000079000000000000000000000002 03 40 00 80   w6vb7
fe80000000000000b0c1d2fffee3f4a5 03 40 20 80   w6vb7
20010db8000000010000000000000000 04 40 00 00    eth1
20010db8000000010002000300040005 04 40 00 00    eth1

not an address line
zzzz0000000000000000000000000000 04 40 00 00    eth1
"""

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 10.79.0.2
        /32 host LOCAL
     |-- 10.79.0.0
        /24 link UNICAST
"""


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")


def test_if_inet6_addresses_in_the_form_sockets_report() -> None:
    got = local_ipv6(IF_INET6)
    assert got == {"::1", "fd00:79::2", "fe80::b0c1:d2ff:fee3:f4a5", "2001:db8:0:1::",
                   "2001:db8:0:1:2:3:4:5"}  # fmt: skip
    # exactly what a socket gives as a source address (inet_ntop), not another spelling
    lines = [line.split()[0] for line in IF_INET6.splitlines()[:5]]
    assert got == {socket.inet_ntop(socket.AF_INET6, bytes.fromhex(h)) for h in lines}


def test_fib_trie_local_ipv4_addresses() -> None:
    assert local_ipv4(FIB_TRIE) == {"127.0.0.1", "10.79.0.2"}


def test_local_ipv6_source_is_a_bypass_even_on_an_enforced_interface() -> None:
    agent = object.__new__(Agent)
    agent.enforced = {3}
    agent._local_addresses = local_ipv4(FIB_TRIE) | local_ipv6(IF_INET6)
    assert "from this host" in agent._bypassed("fd00:79::2", 3)
    assert "from this host" in agent._bypassed("fe80::b0c1:d2ff:fee3:f4a5%w6vb7", 3)
    assert "from this host" in agent._bypassed("10.79.0.2", 3)
    assert agent._bypassed("fd00:79::1", 3) == ""  # a peer's address, on the enforced link
    assert "does not run" in agent._bypassed("fd00:79::1", 9)


def _families(socks: list[socket.socket]) -> list[socket.AddressFamily]:
    return [s.family for s in socks]


def _close(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_an_ipv4_host_binds_ipv4_only() -> None:
    socks = open_sockets("127.0.0.1", [0, 0], pytest.fail)
    try:
        assert _families(socks) == [socket.AF_INET, socket.AF_INET]
        assert all(s.getsockname()[0] == "127.0.0.1" for s in socks)
    finally:
        _close(socks)


@needs_ipv6
def test_the_wildcard_binds_both_families_and_an_ipv6_host_ipv6_only() -> None:
    socks = open_sockets("0.0.0.0", [0], pytest.fail)
    try:
        assert _families(socks) == [socket.AF_INET, socket.AF_INET6]
        assert socks[1].getsockname()[0] == "::"
        assert socks[1].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    finally:
        _close(socks)
    socks = open_sockets("::1", [0], pytest.fail)
    try:
        assert _families(socks) == [socket.AF_INET6]
    finally:
        _close(socks)


def _no_ipv6(code: int) -> Callable[[socket.AddressFamily, str, int], socket.socket]:
    real = agent_mod._bound

    def bound(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
        if family == socket.AF_INET6:
            raise OSError(code, errno.errorcode[code])
        return real(family, host, port)

    return bound


def test_without_ipv6_the_wildcard_serves_ipv4_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_mod, "_bound", _no_ipv6(errno.EAFNOSUPPORT))
    warnings: list[str] = []
    socks = open_sockets("0.0.0.0", [0, 0], warnings.append)
    try:
        assert _families(socks) == [socket.AF_INET, socket.AF_INET]
        assert len(warnings) == 1 and "IPv4 only" in warnings[0]
    finally:
        _close(socks)
    with pytest.raises(OSError):  # asked for IPv6 alone: nothing to fall back to
        open_sockets("::1", [0], warnings.append)


def test_other_ipv6_failures_are_not_taken_for_a_missing_ipv6(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_mod, "_bound", _no_ipv6(errno.EADDRINUSE))
    with pytest.raises(OSError) as exc:
        open_sockets("0.0.0.0", [0], pytest.fail)
    assert exc.value.errno == errno.EADDRINUSE


@needs_ipv6
def test_an_ipv6_datagram_comes_with_its_ingress_ifindex_and_full_source() -> None:
    (sock,) = open_sockets("::1", [0], pytest.fail)
    with sock, socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as peer:
        peer.bind(("::1", 0))
        peer.sendto(b"x", sock.getsockname()[:2])
        data, source, ifindex = Agent.receive(sock)
        assert data == b"x"
        assert source[:2] == peer.getsockname()[:2] and len(source) == 4  # flowinfo, scope id
        assert ifindex == socket.if_nametoindex("lo")
