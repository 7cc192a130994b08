"""atheris harness: the crd parser contract (see fuzz/harnesses.py)."""

import sys

from fuzzmain import main

if __name__ == "__main__":
    sys.exit(main("crd", sys.argv))
