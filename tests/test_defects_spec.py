"""Issue 13: what SPEC now states about versions and sort orders, held to the code.

* SPEC 3: every packet version byte other than 1 is UNKNOWN_VERSION, in Python and in
  the kernel (bpf/wire.h); none is MALFORMED.
* SPEC 4.1: a credential's first item other than the integer 1 is UNKNOWN_VERSION; not an
  array, or 1 in a longer form, is MALFORMED.  Lists are strictly increasing by code point
  (not CBOR's length-first order); destinations by (service, lo, hi).
"""

from __future__ import annotations

import socket

import cbor2
import pytest

from warrant.core import keys
from warrant.core.constants import Kind, Reason
from warrant.core.credential import Credential, Link, encode_body
from warrant.core.errors import WarrantError
from warrant.core.rights import Destination, Grant
from warrant.core.wire import peek_kind

PORT = 8443
HOLDER = bytes(keys.from_seed(b"\x05" * 32).verify_key)
ANCHOR_ID = b"\x01" * 8


def reason_of(fn: object, *args: object) -> Reason:
    try:
        fn(*args)  # type: ignore[operator]
    except WarrantError as exc:
        return exc.reason
    return Reason.OK


# ---- SPEC 3: packet versions ------------------------------------------------------------------
def packet(version: int) -> bytes:
    return bytes([version, Kind.DATA, 0, 0]) + bytes(48)


def test_every_version_but_1_is_unknown_version_in_python() -> None:
    for v in range(256):
        want = Reason.OK if v == 1 else Reason.UNKNOWN_VERSION
        assert reason_of(peek_kind, packet(v)) == want, v
    # ... after the length check: three bytes are TRUNCATED whatever the version says.
    assert reason_of(peek_kind, bytes([7, 2, 0])) == Reason.TRUNCATED


@pytest.mark.root
def test_every_version_but_1_is_unknown_version_in_the_kernel() -> None:
    from netns_helpers import require_datapath

    require_datapath()
    from warrant.datapath import libbpf
    from warrant.datapath.loader import Datapath
    from warrant.datapath.wire import udp_frame

    with Datapath.open(pin_root=None) as dp:
        dp.set_ports({PORT})
        dp.set_config(admit_sample=1, pass_events=True, budget=False)
        run = libbpf.TestRunner(dp.xdp_fd, 256)
        got = {}
        for v in range(256):
            run.run(udp_frame(packet(v), PORT, sport=4000, src=socket.inet_aton("10.0.0.1")))
            (ev,) = dp.events()
            got[v] = ev.reason
    assert got.pop(1) == Reason.UNKNOWN_SESSION  # version 1 parses: no such session
    assert set(got.values()) == {Reason.UNKNOWN_VERSION}


# ---- SPEC 4.1: credential version and sort orders ----------------------------------------------
SIG = bytes(64)


def body(**changes: object) -> bytes:
    grant = Grant(operations=("orders.read",), destinations=(Destination("orders", 1, 1),),
                  expires=2_000_000_000)  # fmt: skip
    m = cbor2.loads(encode_body("acme.prod", ANCHOR_ID, HOLDER, grant))
    m.update({int(k[1:]): v for k, v in changes.items()})
    return cbor2.dumps(m, canonical=True)  # canonical sorts map keys, never list items


@pytest.mark.parametrize("first", [0, 2, -1, 2**70, "1", b"\x01", True, None])
def test_a_first_item_other_than_integer_1_is_unknown_version(first: object) -> None:
    data = cbor2.dumps([first, body(), SIG])
    assert reason_of(Credential.decode, data) == Reason.UNKNOWN_VERSION


def test_not_an_array_or_a_long_form_1_is_malformed() -> None:
    b = body()
    assert reason_of(Credential.decode, cbor2.dumps({1: b})) == Reason.MALFORMED
    assert reason_of(Credential.decode, cbor2.dumps([])) == Reason.MALFORMED
    header = cbor2.dumps([1, b, SIG])
    long_one = header[:1] + b"\x18\x01" + header[2:]  # 1 as a two-byte integer
    assert cbor2.loads(long_one) == [1, b, SIG]
    assert reason_of(Credential.decode, long_one) == Reason.MALFORMED
    assert reason_of(Credential.decode, header) == Reason.OK


def test_lists_are_in_code_point_order_not_length_first() -> None:
    # CBOR's deterministic *map key* order is length first ("b" < "ab"); lists are not.
    assert reason_of(Link.decode, body(k3=["ab.x", "b.x"]), SIG, True) == Reason.OK
    assert reason_of(Link.decode, body(k3=["b.x", "ab.x"]), SIG, True) == Reason.MALFORMED
    assert reason_of(Link.decode, body(k3=["a.b", "a.b"]), SIG, True) == Reason.MALFORMED
    assert reason_of(Link.decode, body(k8=["a.net", "b.net"]), SIG, True) == Reason.OK
    assert reason_of(Link.decode, body(k8=["b.net", "a.net"]), SIG, True) == Reason.MALFORMED


def test_destinations_are_in_service_lo_hi_order() -> None:
    # (a, 24, 40) < (a, 30, 30): by the triple, although ["a", 30] encodes to smaller bytes.
    ok = [["a", 24, 40], ["a", 30]]
    assert cbor2.dumps(ok[1]) < cbor2.dumps(ok[0])
    assert reason_of(Link.decode, body(k4=ok), SIG, True) == Reason.OK
    assert reason_of(Link.decode, body(k4=ok[::-1]), SIG, True) == Reason.MALFORMED
    assert reason_of(Link.decode, body(k4=[["ab", 1], ["b", 1]]), SIG, True) == Reason.OK
    assert reason_of(Link.decode, body(k4=[["b", 1], ["ab", 1]]), SIG, True) == Reason.MALFORMED
    assert reason_of(Link.decode, body(k4=[["a", 5, 5]]), SIG, True) == Reason.MALFORMED
