"""atheris harness: the transparent-mode DATA contract (see fuzz/harnesses.py)."""

import sys

from fuzzmain import main

if __name__ == "__main__":
    sys.exit(main("transparent", sys.argv))
