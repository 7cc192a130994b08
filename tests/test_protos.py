"""The committed protobuf modules are what tools/gen_protos.py makes from the .proto files,
and the declarations carry the numbers Hubble's clients use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from warrant.integration.proto.flow import flow_pb2
from warrant.integration.proto.observer import observer_pb2

ROOT = Path(__file__).resolve().parent.parent


def test_generated_modules_are_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_protos.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_a_stale_module_is_noticed(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_protos
    finally:
        sys.path.remove(str(ROOT / "tools"))
    fresh = gen_protos.generate(tmp_path)
    assert {p.name for p in fresh} >= {"flow_pb2.py", "observer_pb2.py", "observer_pb2_grpc.py"}
    target = next(p for p in gen_protos.PROTO_DIR.rglob("flow_pb2.py"))
    saved = target.read_bytes()
    try:
        target.write_bytes(saved + b"# edited by hand\n")
        assert gen_protos.main(["--check"]) == 1
    finally:
        target.write_bytes(saved)
    assert gen_protos.main(["--check"]) == 0


def test_wire_names_and_numbers() -> None:
    # package, message and service names are Hubble's: the gRPC path and the Any type URLs
    assert observer_pb2.DESCRIPTOR.services_by_name["Observer"].full_name == "observer.Observer"
    assert flow_pb2.Flow.DESCRIPTOR.full_name == "flow.Flow"
    fields = {f.name: f.number for f in flow_pb2.Flow.DESCRIPTOR.fields}
    assert fields["drop_reason_desc"] == 25 and fields["extensions"] == 150000
    assert fields["Summary"] == 100000 and fields["uuid"] == 34 and fields["is_reply"] == 26
    response = {f.name: f.number for f in observer_pb2.GetFlowsResponse.DESCRIPTOR.fields}
    assert response == {"flow": 1, "node_name": 1000, "time": 1001}
