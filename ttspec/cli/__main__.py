"""`python -m ttspec.cli`: the `ttspec` command."""

import sys

from .main import main

sys.exit(main())
