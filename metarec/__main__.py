"""``python -m metarec ...``: see :mod:`metarec.cli`."""

import sys

from metarec.cli import main

if __name__ == "__main__":
    sys.exit(main())
