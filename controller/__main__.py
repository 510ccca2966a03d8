"""``python -m controller``: the ``reconcile`` command."""

import sys

from controller.cli.main import main

sys.exit(main())
