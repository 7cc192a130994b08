"""Compile src/warrant/integration/proto/**/*.proto into the committed *_pb2.py(i) modules.

python3 tools/gen_protos.py          # regenerate
python3 tools/gen_protos.py --check  # exit 1 if a committed module differs from a fresh build

The output depends on grpcio-tools' bundled protoc, so pyproject.toml pins the grpcio-tools
version the committed files were made with; tests/test_protos.py runs --check.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PROTO_DIR = SRC / "warrant" / "integration" / "proto"
# Only the Observer has a service; the others get message modules only.
SERVICES = {"observer/observer.proto"}
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def protos() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Compile every proto into `out` (a tree rooted like src/); returns the files written."""
    include = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    for proto in protos():
        rel = proto.relative_to(SRC).as_posix()
        args = ["protoc", f"-I{SRC}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}"]
        if proto.relative_to(PROTO_DIR).as_posix() in SERVICES:
            args.append(f"--grpc_python_out={out}")
        if protoc.main([*args, rel]) != 0:
            raise SystemExit(f"protoc failed on {rel}")
    return sorted(p for p in out.rglob("*") if p.name.endswith(SUFFIXES))


def main(argv: list[str]) -> int:
    check = "--check" in argv
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        wanted = {p.relative_to(tmp) for p in fresh}
        committed = {p.relative_to(SRC) for p in PROTO_DIR.rglob("*") if p.name.endswith(SUFFIXES)}
        stale = sorted(
            str(rel)
            for rel in wanted | committed
            if rel not in wanted
            or rel not in committed
            or not filecmp.cmp(Path(tmp) / rel, SRC / rel, shallow=False)
        )
        if check:
            for name in stale:
                print(f"stale: {name}", file=sys.stderr)
            return 1 if stale else 0
        for rel in wanted:
            (SRC / rel).write_bytes((Path(tmp) / rel).read_bytes())
        for rel in committed - wanted:
            (SRC / rel).unlink()
        for name in stale:
            print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
