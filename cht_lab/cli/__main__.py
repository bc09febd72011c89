"""`python -m cht_lab.cli`."""

import sys

from cht_lab.cli.main import main

sys.exit(main())
