# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File primitives shared by the release, blue_green and backup cores (standard library only).

- ``atomic_write``: replace a file so a reader sees the old content or the new one, never a mix, and
  the new content survives a power cut once the call returns (temporary file in the same directory,
  fsync, ``os.replace``, fsync of the directory). The content is text, bytes or a file to copy.
- ``atomic_symlink``: the same for a symlink (a reader always finds the old target or the new one).
- ``HolderLock``: an exclusive ``flock`` on a lock file that names its holder (pid, host, user, start
  time) while held, so the process that finds it busy can say who holds it.

The temporary name is ``.<name>.tmp-<pid>``: hidden, never ending in the final suffix (node exporter
reads only ``*.prom``), and recognisable by the cores that clean up after a crash.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import getpass
import json
import os
import shutil
import socket
import time

# datetime.UTC needs Python 3.11; managed hosts may run older Pythons.
_UTC = datetime.timezone.utc  # noqa: UP017
_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
_CHUNK = 1024 * 1024


def fsync_dir(path):
    """fsync a directory, so the names created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path):
    """The temporary name ``atomic_write`` uses beside ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    return os.path.join(directory, f".{os.path.basename(path).lstrip('.')}.tmp-{os.getpid()}")


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write(path, content, mode=None):
    """Replace ``path`` with ``content`` atomically and durably.

    ``content`` is str, bytes, or a binary file object open for reading (copied in chunks, so a large
    file, such as a release archive, never has to fit in memory). ``mode`` defaults to the mode of the
    file being replaced, else 0644. On any failure the temporary file is removed and ``path`` is left
    as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    data = content.encode("utf-8") if isinstance(content, str) else content
    tmp = temp_name(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover of a dead process that had our pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            if hasattr(data, "read"):
                for chunk in iter(lambda: data.read(_CHUNK), b""):
                    _write_all(fd, chunk)
            else:
                _write_all(fd, data)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
    return path


def atomic_symlink(target, path, before_replace=None):
    """Point the symlink ``path`` at ``target`` atomically and durably: a new link under the temporary name,
    renamed over ``path`` with one ``rename(2)`` (never ``ln -sfn``), then fsync of the directory.

    ``before_replace`` (tests) runs between creating the temporary link and the rename. On any failure the
    temporary link is removed and ``path`` is left as it was.
    """
    tmp = temp_name(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover of a dead process that had our pid
    os.symlink(target, tmp)
    try:
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return path


def atomic_write_json(path, data, mode=None):
    """``atomic_write`` of ``data`` as indented, key-sorted JSON with a final newline."""
    return atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=mode)


def remove_path(path):
    """Remove a file, link or directory tree; a missing path is not an error."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def utc_stamp():
    return datetime.datetime.now(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_holder(raw):
    """(text, holder dict) for the JSON a ``HolderLock`` writes; an unknown process when unreadable."""
    try:
        holder = json.loads(raw) if raw else {}
    except ValueError:
        holder = {}
    if not isinstance(holder, dict) or not holder:
        return "an unknown process", {}
    text = (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (user {holder.get('user', '?')}) "
        f"since {holder.get('started_at', '?')}"
    )
    return text, holder


class LockBusy(Exception):
    """The lock is held by someone else; ``holder_text`` and ``holder`` say who."""

    def __init__(self, path, holder_text, holder, waited):
        super().__init__(f"{path} is locked by {holder_text}")
        self.path = path
        self.holder_text = holder_text
        self.holder = holder
        self.waited = waited


class HolderLock:
    """Exclusive ``flock`` on ``path`` that writes its holder into the file while held.

    ``timeout`` seconds to wait (0: fail at once). When still busy, ``busy(LockBusy)`` is called and the
    exception it returns is raised (the caller's own error type and message); without ``busy`` the
    ``LockBusy`` itself is raised. The file is emptied on release and never removed (removing a flock()ed
    file lets two processes each lock a different inode).
    """

    def __init__(self, path, timeout=0.0, poll=0.2, mode=0o600, busy=None):
        self.path = path
        self.timeout = float(timeout or 0)
        self.poll = poll
        self.mode = mode
        self.busy = busy
        self.fd = None

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), self.mode)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in _BUSY:
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
                    os.close(fd)
                    text, holder = describe_holder(raw)
                    busy = LockBusy(self.path, text, holder, self.timeout)
                    raise (self.busy(busy) if self.busy else busy) from None
                time.sleep(self.poll)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "user": _user(), "started_at": utc_stamp()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            os.fsync(fd)
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None
        return False


def _user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
