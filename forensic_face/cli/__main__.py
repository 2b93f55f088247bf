"""``python -m forensic_face.cli``."""

import sys

from forensic_face.cli import main

sys.exit(main())
