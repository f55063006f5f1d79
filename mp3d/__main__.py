"""`python -m mp3d` runs the command line."""

import sys

from mp3d.cli import main

sys.exit(main())
