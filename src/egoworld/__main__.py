"""`python -m egoworld ...` (also what `accelerate launch -m egoworld train ...` runs)."""

import sys

from egoworld.cli import main

sys.exit(main())
