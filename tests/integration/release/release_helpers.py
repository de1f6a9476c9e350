"""Helpers for the release integration tests: archives, tree snapshots, plays, the killed deploy."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

MODULE = "stackops.platform.release"
INFO_MODULE = "stackops.platform.release_info"


def make_tar(path: Path, files: dict[str, Any]) -> Path:
    """files: name -> bytes (regular file), None (directory) or ('sym'|'lnk', target)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                info.linkname = data[1]
                tf.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def app_files(version: str) -> dict[str, Any]:
    return {
        "app": None,
        "app/index.html": f"<h1>{version}</h1>\n".encode(),
        "app/VERSION": version.encode(),
        "logs/from-artifact.log": b"must be hidden by the shared logs/ link\n",
    }


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root (hidden ones included): type plus link target or file content."""
    result: dict[str, tuple] = {}
    if not root.exists():
        return result
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            if full.is_symlink():
                result[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                result[rel] = ("dir", oct(full.stat().st_mode))
            else:
                result[rel] = ("file", full.read_bytes(), oct(full.stat().st_mode))
    return result


def current_release(root: Path) -> str | None:
    link = root / "current"
    if not link.is_symlink():
        return None
    target = os.readlink(link)
    assert target.startswith("releases/"), target
    return target.split("/", 1)[1]


def assert_complete(root: Path, release_id: str) -> dict[str, Any]:
    """The release directory exists, holds the artifact and a parseable .release-meta naming it."""
    release = root / "releases" / release_id
    assert release.is_dir() and not release.is_symlink(), release
    meta = json.loads((release / ".release-meta").read_text())
    assert meta["id"] == release_id
    assert (release / "app" / "index.html").is_file()
    return meta


def release_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "releases").iterdir() if not p.name.startswith("."))


def play(*tasks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "release test", "hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def release_task(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, MODULE: args}


def info_task(name: str, path: Path) -> dict[str, Any]:
    return {"name": name, INFO_MODULE: {"path": str(path)}}


CORE_SCRIPT = """
import json, sys
from ansible_collections.stackops.platform.plugins.module_utils import release_core
print(json.dumps(release_core.run(json.loads(sys.argv[1]))))
"""


def run_core(params: dict[str, Any], kill_at: str | None = None) -> subprocess.CompletedProcess:
    """Run the core deploy in a child process, optionally SIGKILLing itself at a named step."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.environ["ANSIBLE_COLLECTIONS_PATH"]
    env.pop("STACKOPS_RELEASE_TEST_KILL_AT", None)
    if kill_at:
        env["STACKOPS_RELEASE_TEST_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-c", CORE_SCRIPT, json.dumps(params)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
