# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The archive the release action plugin uploads (the module's upload_dir): check it, then cache it on the host.

With upload_dir set, the action plugin has sent src from the controller into its remote tmp directory, under the
file's own name, and passes that path as src. Here:

- ``prepare_upload`` checks the upload against sha256 (required) before anything is written, and works out whether
  the cached copy ``<upload_dir>/<name>`` has to be (re)written: it is missing, its content differs, or it is not
  a 0600 file of the user the module runs as.
- the release core then checks the archive and plans the deploy as for any archive, and builds the release from
  the verified upload (private to this run), recording ``<upload_dir>/<name>`` as its source;
- ``place_upload`` writes the cached copy, under the deploy lock once the plan holds: upload_dir is created 0700
  when missing, the file 0600, atomically (``file_primitives.atomic_write``).

Check mode uploads nothing: a cached copy with the expected sha256 then stands in for the upload (the archive is
checked as in a real run); without one, the plan comes from sha256 alone.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import atomic_write, fsync_dir
from ansible_collections.stackops.platform.plugins.module_utils.release_archive import sha256_file
from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError, normalize_sha256

ARCHIVE_MODE = 0o600
DIR_MODE = 0o700


class Upload:
    """An archive uploaded with upload_dir (see ``prepare_upload``)."""

    def __init__(self, target, sha256, source, place, cached_sha256):
        self.target = target  # <upload_dir>/<name>: the cached copy later tasks use as src
        self.sha256 = sha256  # expected, and (with an upload) verified
        self.source = source  # the file to check and build from; None in check mode without a usable cached copy
        self.place = place  # whether the cached copy is (or, in check mode, would be) written
        self.cached_sha256 = cached_sha256  # of the cached copy before the task (None when there is none)

    def describe(self, after):
        if after:
            return f"archive: {self.target} (sha256 {self.sha256})\n"
        if self.cached_sha256 is None:
            return f"archive: {self.target} (absent)\n"
        return f"archive: {self.target} (sha256 {self.cached_sha256})\n"

    def result(self):
        return {"path": self.target, "sha256": self.sha256, "placed": self.place}


def _cached(target, expected):
    """(sha256 of the cached copy or None when there is none, whether it is right as it is)."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None, False
    if not stat.S_ISREG(st.st_mode):
        raise ReleaseError(
            f"{target} exists and is not a regular file (a directory, link or other); remove it, upload_dir keeps "
            "the archive under that name"
        )
    digest = sha256_file(target)
    right = digest == expected and stat.S_IMODE(st.st_mode) == ARCHIVE_MODE and st.st_uid == os.geteuid()
    return digest, right


def prepare_upload(params, check_mode=False):
    """The Upload for params (None without upload_dir); raises ReleaseError before anything is written."""
    upload_dir = params.get("upload_dir")
    if not upload_dir:
        return None
    state = params.get("state") or "deployed"
    if state != "deployed":
        raise ReleaseError(f"upload_dir applies to state=deployed only, not state={state}")
    if not os.path.isabs(upload_dir):
        raise ReleaseError(f"upload_dir {upload_dir!r} must be an absolute path on the managed host")
    expected = normalize_sha256(params.get("sha256"))
    if not expected:
        raise ReleaseError(
            "upload_dir needs sha256: the expected SHA-256 of the archive src, checked on the host after the upload"
        )
    src = params.get("src")
    name = os.path.basename(src or "")
    if name in ("", ".", ".."):
        raise ReleaseError(f"src {src!r} must name an archive file (upload_dir keeps its file name)")
    upload_dir = os.path.normpath(upload_dir)
    if os.path.lexists(upload_dir) and not os.path.isdir(upload_dir):
        raise ReleaseError(f"upload_dir {upload_dir} exists and is not a directory")
    target = os.path.join(upload_dir, name)
    if check_mode:
        # Nothing was uploaded: src names the controller's file, only its name counts here.
        cached, right = _cached(target, expected)
        return Upload(target, expected, target if cached == expected else None, not right, cached)
    if not os.path.isfile(src):
        raise ReleaseError(
            f"the uploaded archive {src} is missing or not a file; with upload_dir the action plugin uploads src "
            "from the controller (run the module through its action, not on its own)"
        )
    actual = sha256_file(src)
    if actual != expected:
        raise ReleaseError(
            f"checksum mismatch for the uploaded archive {name}: expected sha256 {expected}, got {actual} (the "
            f"controller's file is another one, or the transfer damaged it); nothing was changed: nothing placed in "
            f"{upload_dir}, no release built",
            expected_sha256=expected,
            actual_sha256=actual,
        )
    cached, right = _cached(target, expected)
    return Upload(target, expected, src, not right, cached)


def place_upload(upload):
    """Write the cached copy from the verified upload: upload_dir 0700 when created, the file 0600, atomically."""
    directory = os.path.dirname(upload.target)
    if not os.path.isdir(directory):
        os.makedirs(directory, DIR_MODE, exist_ok=True)
        os.chmod(directory, DIR_MODE)  # whatever the umask
        fsync_dir(os.path.dirname(directory))
    with open(upload.source, "rb") as fh:
        atomic_write(upload.target, fh, mode=ARCHIVE_MODE)
    return upload.target
