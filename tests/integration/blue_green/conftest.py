"""Fixtures: a throwaway nginx (own prefix in tmp, 127.0.0.1:<free port>) in front of two backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from blue_green_stack import APP, Stack, get


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("bg-nginx")
    for sub in ("logs", "tmp", "state"):
        (prefix / sub).mkdir()
    st = Stack(prefix)
    st.write_config()
    st.upstream_file.write_text(f"upstream {APP}_backend {{\n    server {st.upstreams['blue']};\n}}\n")
    started = st.nginx()
    try:
        assert started.returncode == 0, f"nginx did not start: {started.stderr} {st.error_log()}"
        deadline = time.monotonic() + 10
        while True:
            try:
                if get(st.url)[1] == "blue":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"nginx does not answer on {st.url}: {st.error_log()}"
            time.sleep(0.1)
        yield st
    finally:
        st.nginx("-s", "quit")
        pid_file = prefix / "nginx.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_file.exists():
            subprocess.run(["kill", "-TERM", pid_file.read_text().strip()], check=False)
        for backend in st.backends.values():
            backend.stop()


@pytest.fixture
def blue(stack):
    """nginx serving blue, state file saying blue, both colours healthy."""
    stack.reset("blue")
    return stack


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """nginx configured by the api role's templates (symlink routing), blue routed, started once per module."""
    from routed_stack import RoutedStack  # noqa: PLC0415 (only the routing tests need it)

    prefix = tmp_path_factory.mktemp("bg-routed")
    prefix.chmod(0o755)
    st = RoutedStack(prefix, name=f"bgroute{os.getpid()}")
    play = prefix / "render.yml"
    play.write_text(json.dumps(st.render_play()))
    rendered = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(play),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    started = None
    try:
        checked = st.nginx("-t")
        assert checked.returncode == 0, checked.stderr
        started = st.nginx()
        assert started.returncode == 0, f"nginx did not start: {started.stderr} {st.error_log()}"
        yield st
    finally:
        if started is not None and started.returncode == 0:
            st.nginx("-s", "quit")
            pid_file = prefix / "nginx.pid"
            deadline = time.monotonic() + 10
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        for backend in st.backends.values():
            backend.stop()
        st.access_log.unlink(missing_ok=True)
        Path(f"/var/log/nginx/{st.name}.error.log").unlink(missing_ok=True)
