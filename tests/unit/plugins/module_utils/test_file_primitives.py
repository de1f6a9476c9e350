"""Unit tests of the shared file primitives: atomic_write and the holder-naming lock."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import file_primitives as fp


def test_atomic_write_keeps_mode_and_leaves_no_temp(tmp_path):
    path = tmp_path / "up.conf"
    path.write_text("old")
    os.chmod(path, 0o640)
    fp.atomic_write(str(path), "new")
    assert path.read_text() == "new"
    assert (os.stat(path).st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ["up.conf"]


def test_atomic_write_new_file_mode_and_bytes(tmp_path):
    path = tmp_path / "metrics.prom"
    fp.atomic_write(str(path), b"\x00binary", mode=0o600)
    assert path.read_bytes() == b"\x00binary"
    assert (os.stat(path).st_mode & 0o777) == 0o600
    fp.atomic_write_json(str(tmp_path / "s.json"), {"b": 1, "a": [2]})
    assert (tmp_path / "s.json").read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'
    assert (os.stat(tmp_path / "s.json").st_mode & 0o777) == 0o644


def test_atomic_write_copies_a_file_object_in_chunks(tmp_path, monkeypatch):
    # Larger than one chunk (shrunk for the test), so the copy loops; the source is read, never loaded whole.
    monkeypatch.setattr(fp, "_CHUNK", 7)
    source = tmp_path / "upload.tar.gz"
    source.write_bytes(bytes(range(256)) * 3)
    path = tmp_path / "cache" / "app.tar.gz"
    path.parent.mkdir()
    with open(source, "rb") as fh:
        fp.atomic_write(str(path), fh, mode=0o600)
    assert path.read_bytes() == source.read_bytes()
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert os.listdir(path.parent) == ["app.tar.gz"]


def test_atomic_write_of_a_file_object_cleans_up_when_reading_fails(tmp_path):
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"old")

    class Broken:
        def read(self, size):
            raise OSError("I/O error")

    with pytest.raises(OSError, match="I/O error"):
        fp.atomic_write(str(path), Broken(), mode=0o600)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["app.tar.gz"]


def test_atomic_write_cleans_up_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "up.conf"
    path.write_text("old")
    seen = []

    def boom(src, dst):
        seen.append(os.path.basename(src))
        raise OSError("disk full")

    monkeypatch.setattr(fp.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        fp.atomic_write(str(path), "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["up.conf"]
    assert seen == [f".up.conf.tmp-{os.getpid()}"]  # hidden, same directory, never the final suffix


def test_atomic_write_replaces_a_dead_process_leftover(tmp_path):
    path = tmp_path / "state.json"
    leftover = tmp_path / f".state.json.tmp-{os.getpid()}"
    leftover.write_text("half")
    fp.atomic_write(str(path), "whole")
    assert path.read_text() == "whole"
    assert not leftover.exists()


def test_lock_names_its_holder_and_empties_on_release(tmp_path):
    path = tmp_path / ".lock"
    with fp.HolderLock(str(path)):
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid()
        assert holder["host"] == socket.gethostname()
        assert set(holder) == {"pid", "host", "user", "started_at"}
        with pytest.raises(fp.LockBusy) as busy, fp.HolderLock(str(path)):
            pass
        assert busy.value.holder == holder
        assert busy.value.holder_text.startswith(f"pid {os.getpid()} on host ")
    assert path.read_text() == ""
    with fp.HolderLock(str(path)):  # free again
        pass


def test_lock_busy_raises_the_callers_error_after_waiting(tmp_path):
    path = tmp_path / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"not json")

        def busy(info):
            return RuntimeError(f"held by {info.holder_text} after {info.waited:g}s")

        with pytest.raises(RuntimeError, match=r"held by an unknown process after 0.3s"), fp.HolderLock(
            str(path), timeout=0.3, poll=0.05, busy=busy
        ):
            pass
    finally:
        os.close(fd)


def test_lock_waits_for_the_holder_to_finish(tmp_path):
    path = tmp_path / ".lock"
    first = fp.HolderLock(str(path))
    first.__enter__()
    timer = threading.Timer(0.3, first.__exit__, (None, None, None))
    timer.start()
    try:
        with fp.HolderLock(str(path), timeout=5, poll=0.05):
            assert first.fd is None  # acquired only after the first holder let go
    finally:
        timer.join()


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("", "an unknown process"),
        ("[1, 2]", "an unknown process"),
        ('{"pid": 7, "host": "h", "user": "u", "started_at": "t"}', "pid 7 on host h (user u) since t"),
        ('{"pid": 7}', "pid 7 on host ? (user ?) since ?"),
    ],
)
def test_describe_holder(raw, text):
    assert fp.describe_holder(raw)[0] == text


def test_remove_path(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "f").write_text("x")
    fp.remove_path(str(tmp_path / "d"))
    fp.remove_path(str(tmp_path / "f"))
    fp.remove_path(str(tmp_path / "missing"))
    assert os.listdir(tmp_path) == []
