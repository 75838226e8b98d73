"""`python -m ringlb`: the same command as the `ringlb` console script."""

import sys

from ringlb.cli import main

if __name__ == "__main__":
    sys.exit(main())
