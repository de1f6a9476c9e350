"""Settings from the environment (systemd loads shared/.env) and the release tree."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from app import faults

# The release directory: the parent of this package (<release>/app/config.py).
RELEASE_DIR = Path(__file__).resolve().parent.parent
COLORS = ("blue", "green")


def release_version(release_dir: Path = RELEASE_DIR, environ: dict | None = None) -> str:
    """The release's VERSION file wins (blue and green share one .env but run different releases)."""
    environ = os.environ if environ is None else environ
    try:
        text = (release_dir / "VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or environ.get("APP_VERSION", "") or "dev"


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    database_url: str
    redis_url: str
    color: str
    version: str
    release_dir: Path
    fail_health: bool
    queue: str = "jobs"
    # APP_ERROR_RATIO (or the release's ERROR_RATIO file): share of requests answered 500 (app.faults). 0 = off.
    error_ratio: float = 0.0

    @property
    def fail_health_file(self) -> Path:
        return self.release_dir / "FAIL_HEALTH"

    def health_forced_down(self) -> bool:
        """APP_FAIL_HEALTH=1 or a FAIL_HEALTH file in the release: simulate a bad release (checked per request)."""
        return self.fail_health or self.fail_health_file.exists()


def load(environ: dict | None = None, host: str | None = None, port: int | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    color = environ.get("APP_COLOR", "")
    if color and color not in COLORS and not re.match(r"^[A-Za-z0-9_-]{1,32}$", color):
        raise ValueError(f"APP_COLOR={color!r}: use blue, green or a short name")
    return Settings(
        host=host or environ.get("APP_HOST", "127.0.0.1"),
        port=int(port or environ.get("APP_PORT", "8000")),
        database_url=environ.get("DATABASE_URL", ""),
        redis_url=environ.get("REDIS_URL", ""),
        color=color or "none",
        version=release_version(RELEASE_DIR, environ),
        release_dir=RELEASE_DIR,
        fail_health=environ.get("APP_FAIL_HEALTH", "") == "1",
        queue=environ.get("APP_QUEUE", "jobs"),
        error_ratio=faults.configured_ratio(environ, RELEASE_DIR),
    )
