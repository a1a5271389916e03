"""``python -m mycarenet_ic``: the ``mycarenet-ic`` command."""

import sys

from mycarenet_ic.cli import main

sys.exit(main())
