"""Fixtures: the watch stack (throwaway nginx in the api log format, the sample app as blue and green)."""

from __future__ import annotations

import os

import pytest
from watch_stack import WatchStack


@pytest.fixture
def stack(tmp_path_factory, request):
    """nginx serving blue; green's share of 500s is the test's indirect parameter (default none)."""
    st = WatchStack(tmp_path_factory.mktemp("watch-nginx"))
    try:
        st.start_colours(green_error_ratio=getattr(request, "param", 0.0))
        st.start_nginx()
        yield st
    finally:
        st.stop_nginx()
        st.stop_colours()


@pytest.fixture
def deploy_root(tmp_path):
    """A deploy root as a deploy leaves it just before the switch: current -> r1 (blue), green's link at r2."""
    root = tmp_path / "srv"
    for release in ("r1", "r2"):
        (root / "releases" / release).mkdir(parents=True)
    (root / "colors").mkdir()
    os.symlink(root / "releases" / "r1", root / "current")
    os.symlink(root / "releases" / "r1", root / "colors" / "blue")
    os.symlink(root / "releases" / "r2", root / "colors" / "green")
    return root
