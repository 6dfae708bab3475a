"""`python -m afxdp ...`: the same as the `afxdp` command (see afxdp.cli)."""

import sys

from afxdp.cli import main

if __name__ == "__main__":
    sys.exit(main())
