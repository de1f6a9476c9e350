# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import release_core, release_layout
from ansible_collections.stackops.platform.plugins.module_utils import release_cutover as cut
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import (
    BlueGreenError,
    build_state,
    dump_state,
    render_upstream,
)
from ansible_collections.stackops.platform.plugins.module_utils.http_probe import Response
from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError

UPSTREAMS = {"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}


class Fetch:
    """Health answers: one status for every request; records the URLs."""

    def __init__(self, status=200):
        self.status = status
        self.urls = []

    def __call__(self, url, timeout):
        self.urls.append(url)
        if self.status is None:
            return Response(None, error="connection refused")
        return Response(self.status, f"body {self.status}")


class Run:
    """nginx -t and reload: record the commands, answer rc 0."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return 0, "", ""


@pytest.fixture
def tree(tmp_path):
    """Deploy root after two deploys: current r2 (green, active), previous r1 (blue, idle but running)."""
    root = tmp_path / "srv" / "shop"
    for rid in ("r1", "r2"):
        src = tmp_path / f"src-{rid}"
        src.mkdir()
        (src / "VERSION").write_text(rid)
        release_core.run({"path": str(root), "src": str(src), "release_id": rid})
    (root / "colors").mkdir()
    (root / "colors" / "blue").symlink_to(root / "releases" / "r1")
    (root / "colors" / "green").symlink_to(root / "releases" / "r2")
    upstream = tmp_path / "shop_upstream.conf"
    upstream.write_text(render_upstream("shop", "green", UPSTREAMS["green"]))
    state = tmp_path / "shop.json"
    state.write_text(dump_state(build_state("shop", "green", "blue", UPSTREAMS["green"])))
    return {"root": root, "upstream": upstream, "state": state, "base": tmp_path}


def params(tree, **overrides):
    values = {
        "name": "shop",
        "release": "previous",
        "release_path": str(tree["root"]),
        "upstreams": dict(UPSTREAMS),
        "upstream_file": str(tree["upstream"]),
        "state_file": str(tree["state"]),
        "healthy_threshold": 2,
        "health_interval": 0,
        "health_timeout": 1,
    }
    values.update(overrides)
    return values


def snapshot(tree):
    """Every path under the test dir with its link target or content (lock files excluded)."""
    found = {}
    for path in sorted(tree["base"].rglob("*")):
        if path.name.endswith(".lock"):
            continue
        if path.is_symlink():
            found[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path)] = path.read_bytes()
    return found


def current(tree):
    return os.path.basename(os.readlink(tree["root"] / "current"))


def test_previous_switches_to_the_colour_that_runs_it_then_moves_current(tree):
    run, fetch = Run(), Fetch(200)
    result = cut.cutover(params(tree), run, fetch=fetch, sleep=lambda _s: None)
    assert result["changed"] and result["switched"] and result["current_moved"] and result["color_found"]
    assert (result["release"], result["release_before"], result["active"], result["previous"]) == (
        "r1", "r2", "blue", "green",
    )  # fmt: skip
    assert current(tree) == "r1"
    assert json.loads((tree["root"] / ".release-state").read_text())["previous"] == "r2"
    assert "server 127.0.0.1:8001;" in tree["upstream"].read_text()
    assert json.loads(tree["state"].read_text())["active"] == "blue"
    assert all(url.startswith("http://127.0.0.1:8001/") for url in fetch.urls) and len(fetch.urls) == 2
    assert [argv[-2:] for argv in run.calls] == [["-t", "-q"], ["-s", "reload"]]
    # Rolling back again returns to r2 on green: the same call.
    again = cut.cutover(params(tree), Run(), fetch=Fetch(200), sleep=lambda _s: None)
    assert (again["release"], again["active"], current(tree)) == ("r2", "green", "r2")


def test_named_release_already_live_changes_nothing(tree):
    before = snapshot(tree)
    run = Run()
    result = cut.cutover(params(tree, release="r2"), run, fetch=Fetch(200))
    assert result["changed"] is False and result["current_moved"] is False and result["active"] == "green"
    assert run.calls == [] and snapshot(tree) == before


def test_nginx_already_on_the_release_only_moves_current(tree):
    # switch.yml toggled nginx to blue (r1) but current still names r2: only current moves.
    tree["upstream"].write_text(render_upstream("shop", "blue", UPSTREAMS["blue"]))
    tree["state"].write_text(dump_state(build_state("shop", "blue", "green", UPSTREAMS["blue"])))
    run = Run()
    result = cut.cutover(params(tree), run, fetch=Fetch(200))
    assert result["changed"] and result["switched"] is False and result["current_moved"]
    assert run.calls == [] and current(tree) == "r1"


@pytest.mark.parametrize(
    ("release", "fragment"),
    [
        ("r9", "release 'r9' does not exist; available releases: r1, r2"),
        ("../r1", "'../r1'"),
        ("r1/x", "'r1/x'"),
    ],
)
def test_bad_release_fails_before_anything_changes(tree, release, fragment):
    before = snapshot(tree)
    with pytest.raises(ReleaseError, match=fragment.replace(".", r"\.")):
        cut.cutover(params(tree, release=release), Run(), fetch=Fetch(200))
    assert snapshot(tree) == before


def test_no_previous_release_is_refused(tmp_path):
    root = tmp_path / "app"
    src = tmp_path / "src"
    src.mkdir()
    release_core.run({"path": str(root), "src": str(src), "release_id": "only"})
    tree = {"root": root, "upstream": tmp_path / "u.conf", "state": tmp_path / "s.json", "base": tmp_path}
    with pytest.raises(ReleaseError, match="no previous release recorded for current release 'only'"):
        cut.cutover(params(tree), Run(), fetch=Fetch(200))


def test_no_colour_runs_the_release(tree):
    (tree["root"] / "colors" / "blue").unlink()
    (tree["root"] / "colors" / "blue").symlink_to(tree["root"] / "releases" / "r2")
    before = snapshot(tree)
    with pytest.raises(BlueGreenError, match="no colour runs release r1") as caught:
        cut.cutover(params(tree), Run(), fetch=Fetch(200))
    assert caught.value.details["color_found"] is False and caught.value.details["release"] == "r1"
    assert snapshot(tree) == before


def test_unhealthy_colour_changes_nothing_and_says_so(tree):
    before = snapshot(tree)
    with pytest.raises(BlueGreenError, match=r"blue .* is not healthy") as caught:
        cut.cutover(params(tree), Run(), fetch=Fetch(None), sleep=lambda _s: None)
    details = caught.value.details
    assert details["health"]["ok"] is False and details["color_found"] is True and details["release"] == "r1"
    assert snapshot(tree) == before and current(tree) == "r2"


def test_check_mode_predicts_and_writes_nothing(tree):
    before = snapshot(tree)
    run = Run()
    result = cut.cutover(params(tree), run, check_mode=True, fetch=Fetch(200), sleep=lambda _s: None)
    assert result["changed"] and result["current_moved"] and result["active"] == "blue"
    assert run.calls == [] and snapshot(tree) == before
    assert not (tree["root"] / ".deploy.lock").exists() or (tree["root"] / ".deploy.lock").stat().st_size == 0


def test_both_colours_on_the_release_prefers_the_active_one(tree):
    (tree["root"] / "colors" / "green").unlink()
    (tree["root"] / "colors" / "green").symlink_to(tree["root"] / "releases" / "r1")
    result = cut.cutover(params(tree), Run(), fetch=Fetch(200))
    assert result["active"] == "green" and result["switched"] is False and current(tree) == "r1"


def test_deploy_lock_held_fails_naming_the_holder(tree):
    before = snapshot(tree)
    with release_layout.deploy_lock(str(tree["root"])), pytest.raises(ReleaseError, match="is locked by pid"):
        cut.cutover(params(tree), Run(), fetch=Fetch(200))
    assert snapshot(tree) == before


def test_current_that_cannot_move_is_reported_after_the_switch(tree, monkeypatch):
    def broken(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cut, "switch_current", broken)
    with pytest.raises(BlueGreenError, match=r"nginx now serves blue .* could not be moved from r2.*Run again"):
        cut.cutover(params(tree), Run(), fetch=Fetch(200), sleep=lambda _s: None)
    assert current(tree) == "r2" and "8001" in tree["upstream"].read_text()


def test_not_a_deploy_root(tmp_path):
    tree = {"root": tmp_path / "nothing", "upstream": tmp_path / "u", "state": tmp_path / "s", "base": tmp_path}
    with pytest.raises(ReleaseError, match="is not a deploy root"):
        cut.cutover(params(tree), Run(), fetch=Fetch(200))
