"""Fixtures for the release integration tests: a fresh deploy root and test artifacts in tmp."""

from __future__ import annotations

import hashlib

import pytest
from release_helpers import app_files, make_tar, make_zip


@pytest.fixture
def artifacts(tmp_path):
    """Three tar.gz releases, a zip and a source directory, with their sha256."""
    art = tmp_path / "artifacts"
    art.mkdir()
    found = {}
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"):
        found[version] = make_tar(art / f"app-{version}.tar.gz", app_files(version))
    found["zip"] = make_zip(art / "app-2.0.0.zip", {k: v for k, v in app_files("2.0.0").items() if v is not None})
    src_dir = art / "app-3.0.0"
    for name, data in app_files("3.0.0").items():
        target = src_dir / name
        if data is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    found["dir"] = src_dir
    found["sha"] = {k: hashlib.sha256(v.read_bytes()).hexdigest() for k, v in found.items() if k not in ("dir",)}
    return found


@pytest.fixture
def root(tmp_path):
    return tmp_path / "srv" / "app"
