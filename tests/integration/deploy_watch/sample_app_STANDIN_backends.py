"""Run the repo's sample app (app.server) with STANDIN backends: /health reports the database and Redis as up.

Neither PostgreSQL nor Redis runs on the controller; everything else (routing, the APP_ERROR_RATIO fault hook,
X-App-Color, graceful SIGTERM) is the real app. Settings from the environment as usual (APP_HOST, APP_PORT, ...).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "sample_app"))

from app import config, server


def _backend_up():
    """STANDIN for the database and Redis checks."""


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s", stream=sys.stderr)
    settings = config.load()
    server.serve(server.AppServer((settings.host, settings.port), settings, checks=(_backend_up, _backend_up)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
