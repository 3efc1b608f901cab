"""``python -m paydesk``: the ``paydesk`` command line (see ``paydesk.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
