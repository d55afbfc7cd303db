"""``python -m lhl.cli`` is ``lhl``."""

import sys

from lhl.cli import main

sys.exit(main())
