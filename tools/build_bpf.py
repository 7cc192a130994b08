"""Build the eBPF objects in bpf/ into build/ (clang -O2 -g -target bpf).

    python3 tools/build_bpf.py            # build what is stale
    python3 tools/build_bpf.py --force    # rebuild everything

The Python loader calls the same function (`warrant.datapath.build`) on demand.
"""

from __future__ import annotations

import sys

from warrant.datapath.build import build_all


def main() -> int:
    for path in build_all(force="--force" in sys.argv):
        print(f"built {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
