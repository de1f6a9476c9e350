# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release ids, checks and the pure decisions of the release cores (no filesystem access).

Which release is previous, which to roll back to, which to prune; what a valid id, sha256, shared path or
archive member is. ``ReleaseError`` carries the message a module reports.
"""

from __future__ import annotations

import datetime
import getpass
import os
import re
import signal

RELEASES_DIR = "releases"
SHARED_DIR = "shared"
CURRENT_LINK = "current"
STATE_FILE = ".release-state"
LOCK_FILE = ".deploy.lock"
META_FILE = ".release-meta"
KILL_ENV = "STACKOPS_RELEASE_TEST_KILL_AT"
# datetime.UTC needs Python 3.11; managed hosts may run older Pythons.
UTC = datetime.timezone.utc  # noqa: UP017
STATES = ("deployed", "activated", "rolled_back", "absent", "failed")
# .release-meta "status" of a release that failed its build hooks, health check or watch (never counted as kept).
FAILED_STATUS = "failed"

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Names of temporary entries this module creates: in releases/ and in the root.
TEMP_RE = re.compile(r"^\.(.+)\.(tmp|del)-\d+$")
CHUNK = 1024 * 1024


class ReleaseError(Exception):
    """A failure with a message meant for the user (fail_json msg) and optional details."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------- pure helpers


def default_release_id(now=None):
    """UTC timestamp id such as 20260220T051228Z (sorts lexicographically in time order)."""
    now = now or datetime.datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ")


def validate_release_id(release_id):
    """Raise ReleaseError unless release_id is a safe single directory name."""
    if not isinstance(release_id, str) or not release_id:
        raise ReleaseError("release_id must not be empty")
    if "/" in release_id or "\\" in release_id or ".." in release_id:
        raise ReleaseError(
            f"release_id {release_id!r} must not contain '/', '\\' or '..'; use letters, digits, '.', '_', '+', '-'"
        )
    if release_id.startswith("."):
        raise ReleaseError(f"release_id {release_id!r} must not start with '.' (names starting with '.' are temporary)")
    if not ID_RE.match(release_id):
        raise ReleaseError(
            f"release_id {release_id!r} is invalid: use at most 128 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    return release_id


def validate_strip_components(value):
    """Leading path components to strip from archive members: None or 0 (none) or a positive int."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReleaseError(f"strip_components {value!r} must be 0 (extract as is) or a positive number")
    return value


def normalize_sha256(value):
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if not _SHA_RE.match(text):
        raise ReleaseError(f"sha256 {value!r} is not 64 hexadecimal characters")
    return text


def normalize_shared_paths(paths):
    """Return [(relpath, is_dir)] from shared_paths; a trailing '/' marks a directory."""
    result = []
    seen = set()
    for raw in paths or []:
        if not isinstance(raw, str) or not raw.strip("/"):
            raise ReleaseError(f"shared_paths entry {raw!r} is empty")
        is_dir = raw.endswith("/")
        rel = raw.strip("/") if not raw.startswith("/") else raw
        parts = rel.split("/")
        if raw.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ReleaseError(
                f"shared_paths entry {raw!r} must be a relative path inside the release without '.', '..' "
                "or empty components"
            )
        if parts[0] == META_FILE:
            raise ReleaseError(f"shared_paths entry {raw!r} would hide {META_FILE}")
        if rel in seen:
            raise ReleaseError(f"shared_paths entry {raw!r} is listed twice")
        seen.add(rel)
        result.append((rel, is_dir))
    for rel, _is_dir in result:
        for other, _other_is_dir in result:
            if other != rel and other.startswith(rel + "/"):
                raise ReleaseError(f"shared_paths entries {rel!r} and {other!r} overlap; list only one of them")
    return result


def select_prune(releases, keep, protected, failed=()):
    """Ids to remove: all but the `keep` highest good ids, never one in `protected`. keep=0 disables pruning.

    Releases in `failed` (marked failed in their metadata) never count towards `keep`, so a run of failed
    deploys cannot push good releases out; they are removed by the next prune unless protected.
    """
    if keep <= 0:
        return []
    ordered = sorted(releases)
    failed = set(failed)
    good = [r for r in ordered if r not in failed]
    kept = set(good[-keep:])
    return [r for r in ordered if r not in kept and r not in protected]


def choose_previous(current, state, releases):
    """The release `current` pointed at before the latest switch.

    state is the parsed .release-state (or None). When it matches `current` its `previous` is used.
    When a switch was interrupted after the symlink but before the state write, state['current'] is the
    release that was active before, so it is the previous one. Without usable state, the highest id below
    `current` is used (id order, never modification times).
    """
    if current is None:
        return None
    releases = set(releases)
    if isinstance(state, dict) and state.get("current") == current:
        prev = state.get("previous")
        return prev if prev in releases and prev != current else None
    if isinstance(state, dict) and state.get("current") in releases and state.get("current") != current:
        return state["current"]
    lower = sorted(r for r in releases if r < current)
    return lower[-1] if lower else None


def rollback_target(current, previous, releases, release_id=None):
    """Choose the release to roll back to; raise ReleaseError with what to do when there is none."""
    if release_id:
        validate_release_id(release_id)
        if release_id not in releases:
            raise ReleaseError(
                f"release {release_id!r} does not exist; available releases: {', '.join(sorted(releases)) or 'none'}"
            )
        return release_id
    if current is None:
        raise ReleaseError("nothing to roll back: no current release (current symlink missing)")
    if previous is None:
        raise ReleaseError(
            f"no previous release recorded for current release {current!r}; set release_id to one of: "
            f"{', '.join(sorted(r for r in releases if r != current)) or 'none'}"
        )
    return previous


def check_member_path(name):
    """Normalise an archive member name; raise ReleaseError if it is absolute or leaves the release dir."""
    if name.startswith("/") or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        raise ReleaseError(f"archive member {name!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ReleaseError(f"archive member {name!r} contains '..'")
    return "/".join(parts)


def check_link_target(name, target):
    """Raise ReleaseError if a symlink `name` -> `target` inside the release would point outside it."""
    if not target or target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise ReleaseError(f"archive member {name!r} is a link to an absolute path {target!r}")
    resolved = os.path.normpath(os.path.join(os.path.dirname(name), target))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        raise ReleaseError(f"archive member {name!r} is a link {target!r} that escapes the release directory")


def kill_point(step):
    """Integration tests kill the process at a named step to prove a crash never breaks `current`."""
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def default_deployed_by():
    return os.environ.get("SUDO_USER") or getpass.getuser()
