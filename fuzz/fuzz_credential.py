"""atheris harness: the credential parser contract (see fuzz/harnesses.py)."""

import sys

from fuzzmain import main

if __name__ == "__main__":
    sys.exit(main("credential", sys.argv))
