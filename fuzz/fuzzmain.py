"""Entry point shared by fuzz/fuzz_<target>.py (no warrant import at module level:
under atheris the project's modules must be imported inside instrument_imports).

    python3 fuzz/fuzz_credential.py [libFuzzer flags] [corpus dirs]   # fuzz (atheris)
    python3 fuzz/fuzz_credential.py --replay FILE...                  # plain Python, no atheris
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(name: str, argv: list[str]) -> int:
    if argv[1:2] == ["--replay"]:
        import harnesses

        n = harnesses.replay(name, [Path(a) for a in argv[2:]])
        print(f"{name}: {n} inputs, no crash")
        return 0
    import atheris  # type: ignore[import-not-found,unused-ignore]

    with atheris.instrument_imports(include=["warrant"]):
        import fuzz_wire
        import harnesses

    check = harnesses.TARGETS[name]
    if name == "receiver":
        fuzz_wire.states()  # build the receiver states before fuzzing starts
    atheris.Setup(argv, check)
    atheris.Fuzz()
    return 0
