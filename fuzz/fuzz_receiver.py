"""atheris harness: the receiver contract of fuzz_wire.py (decoders and Receiver.handle)."""

import sys

from fuzzmain import main

if __name__ == "__main__":
    sys.exit(main("receiver", sys.argv))
