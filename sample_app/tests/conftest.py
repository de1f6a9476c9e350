"""Make the sample app importable as `app` (it ships as a release tree, not as an installed package)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
