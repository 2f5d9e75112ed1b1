"""``python -m bigmodel ...`` runs the ``bigmodel`` command."""

import sys

from bigmodel.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
