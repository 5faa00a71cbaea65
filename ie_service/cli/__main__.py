"""``python -m ie_service.cli`` (how tools start a server in a subprocess)."""

import sys

from . import main

sys.exit(main())
