"""`python -m textgan ...`, which is also what `accelerate launch -m textgan train ...` runs."""

import sys

from .cli import main

sys.exit(main())
