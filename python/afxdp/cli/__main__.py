"""`python -m afxdp.cli ...`: the same as the `afxdp` command."""

import sys

from afxdp.cli import main

if __name__ == "__main__":
    sys.exit(main())
