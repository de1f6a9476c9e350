"""Write small, reproducible .tar.gz stand-in archives (fixed mtimes and owners, sorted entries).

Stand-ins replace upstream release archives in offline CI: they have the upstream directory layout
but the programs inside are tiny Python scripts. They prove the role's install, unit and health
plumbing, never the product itself.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import tarfile
from pathlib import Path

BANNER = "STAND-IN"


def build(files: dict[str, tuple[str, int]], out: Path) -> bool:
    """files maps archive path -> (text, mode). Returns True when out was (re)written."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(name).parents[i]) for name in files for i in range(len(Path(name).parents) - 1)})
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name in sorted(files):
            text, mode = files[name]
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    payload = packed.getvalue()
    if out.exists() and out.read_bytes() == payload:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def cli(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output-dir", type=Path, required=True, help="directory to write the archive to")
    parser.add_argument("--version", default="0.0.0-standin", help="version string used in names and paths")
    return parser.parse_args()


def report(changed: bool, out: Path) -> None:
    # Machine-readable last line: "built <path>" or "unchanged <path>".
    print(f"{BANNER} archive (not the real product): {'built' if changed else 'unchanged'} {out}")
