# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import release_colors as colors
from ansible_collections.stackops.platform.plugins.module_utils import release_core as core
from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError


@pytest.fixture
def root(tmp_path):
    """A deploy root with releases r1 and r2 (built from directories), colors/blue -> r1, nginx on blue."""
    root = tmp_path / "srv"
    for rid in ("r1", "r2"):
        src = tmp_path / f"src-{rid}"
        src.mkdir()
        (src / "VERSION").write_text(rid)
        core.run({"path": str(root), "src": str(src), "release_id": rid, "activate": False})
    (root / "colors").mkdir()
    os.symlink(str(root / "releases" / "r1"), root / "colors" / "blue")
    (tmp_path / "state.json").write_text(json.dumps({"active": "blue", "previous": None}))
    return root


def state(root):
    return str(root.parent / "state.json")


def tree(root):
    return {p.name: os.readlink(p) for p in (root / "colors").iterdir()}


@pytest.mark.parametrize(("content", "active"), [(None, "blue"), ({"active": "green"}, "green")])
def test_active_colour_from_the_state_file(tmp_path, content, active):
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(json.dumps(content))
    assert colors.active_color(str(path)) == active


@pytest.mark.parametrize(("text", "fragment"), [("{", "not JSON"), ('{"active": "purple"}', "'purple' is not blue")])
def test_unusable_state_file_names_itself(tmp_path, text, fragment):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(ReleaseError) as info:
        colors.active_color(str(path))
    assert str(path) in info.value.msg and fragment in info.value.msg and "switch.yml" in info.value.msg


def test_read_only_reports_colours_and_links(root):
    res = colors.link(str(root), state(root))
    assert (res["active"], res["idle"], res["changed"], res["color"]) == ("blue", "green", False, None)
    assert res["links"] == {"blue": str(root / "releases" / "r1"), "green": ""}
    assert res["recorded"] is True


def test_blue_by_convention_before_any_switch_is_not_recorded(root):
    os.unlink(state(root))
    res = colors.link(str(root), state(root))
    assert (res["active"], res["recorded"]) == ("blue", False)


def test_links_the_idle_colour_atomically_and_reports_before(root):
    target = str(root / "releases" / "r2")
    res = colors.link(str(root), state(root), release_path=target, check_mode=True)
    assert (res["color"], res["before"], res["after"], res["changed"]) == ("green", "", target, True)
    assert "green" not in tree(root)
    res = colors.link(str(root), state(root), release_path=target)
    assert res["changed"] is True and tree(root)["green"] == target
    assert res["links"]["green"] == target
    assert not [p for p in os.listdir(root / "colors") if p.startswith(".")]
    again = colors.link(str(root), state(root), release_path=target + "/")
    assert again["changed"] is False and again["before"] == target
    # Back to what it named before (the rescue path), by colour.
    res = colors.link(str(root), state(root), "green", str(root / "releases" / "r1"))
    assert res["before"] == target and tree(root)["green"] == str(root / "releases" / "r1")


@pytest.mark.parametrize(
    ("color", "release_path", "fragment"),
    [
        ("blue", "@r2", "refusing to move the blue colour link: nginx serves blue"),
        ("idle", "releases/r2", "must be an absolute path"),
        ("idle", "/etc", "is not a release of"),
        ("idle", "@../r2", "is not a release of"),
        ("idle", "@r9", "is not a complete release"),
        ("idle", "@.r2.tmp-1", "must not start with '.'"),
        ("purple", "@r2", "color 'purple' must be blue, green or idle"),
        ("green", None, "color=green needs release_path"),
    ],
)
def test_bad_input_changes_nothing(root, color, release_path, fragment):
    if release_path and release_path.startswith("@"):
        release_path = str(root / "releases") + "/" + release_path[1:]
    before = tree(root)
    with pytest.raises(ReleaseError) as info:
        colors.link(str(root), state(root), color, release_path)
    assert fragment in info.value.msg, info.value.msg
    assert tree(root) == before


def test_a_colour_path_that_is_not_a_link_is_refused(root):
    (root / "colors" / "green").mkdir()
    with pytest.raises(ReleaseError, match="colors/green exists but is not a symlink"):
        colors.link(str(root), state(root), release_path=str(root / "releases" / "r2"))


def test_lock_held_elsewhere_names_the_holder(root):
    with core.deploy_lock(str(root)), pytest.raises(ReleaseError, match="is locked by"):
        colors.link(str(root), state(root), release_path=str(root / "releases" / "r2"))
    assert "green" not in tree(root)
