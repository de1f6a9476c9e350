"""Release archives for the deploy playbook tests: the sample app's layout (one top directory, a VERSION file)."""

from __future__ import annotations

import tarfile
from pathlib import Path


def sample_archive(tmp_path: Path, version: str = "2.0.0") -> Path:
    """<tmp_path>/sample-app-<version>.tar.gz holding sample-app-<version>/VERSION."""
    src = tmp_path / "build" / f"sample-app-{version}"
    src.mkdir(parents=True)
    (src / "VERSION").write_text(f"{version}\n")
    archive = tmp_path / f"sample-app-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=f"sample-app-{version}")
    return archive
