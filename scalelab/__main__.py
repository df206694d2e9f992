"""`python -m scalelab ...` is the `scalelab` command."""
import sys

from scalelab.cli import main

sys.exit(main())
