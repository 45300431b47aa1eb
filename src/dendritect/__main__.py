"""``python -m dendritect``: the command line, as the ``dendritect`` script runs it."""

import sys

from dendritect.cli.main import main

sys.exit(main())
