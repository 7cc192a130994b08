"""atheris harness: the anchors parser contract (see fuzz/harnesses.py)."""

import sys

from fuzzmain import main

if __name__ == "__main__":
    sys.exit(main("anchors", sys.argv))
