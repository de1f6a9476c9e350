# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""release_view: the read-only report of a deploy root (release_info), its links and its refusals."""

from __future__ import annotations

import os

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import release_core as core
from ansible_collections.stackops.platform.plugins.module_utils import release_view as view
from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError


def build(tmp_path, root, rid):
    """A release built from a directory and made current."""
    src = tmp_path / f"src-{rid}"
    src.mkdir(exist_ok=True)
    (src / "VERSION").write_text(rid)
    return core.run({"path": str(root), "src": str(src), "release_id": rid})


def test_info_errors(tmp_path):
    with pytest.raises(ReleaseError, match="does not exist"):
        view.info(str(tmp_path / "missing"))
    with pytest.raises(ReleaseError, match="not a deploy root"):
        view.info(str(tmp_path))


def test_info_reports_links_with_the_release_they_name(tmp_path):
    root = tmp_path / "app"
    build(tmp_path, root, "r1")
    build(tmp_path, root, "r2")
    (root / "colors").mkdir()
    os.symlink(str(root / "releases" / "r1"), root / "colors" / "blue")  # absolute target
    os.symlink("../releases/r2", root / "colors" / "green")  # relative target
    os.symlink("../releases/gone", root / "colors" / "red")  # dangling
    os.symlink("/etc", root / "colors" / "odd")  # not a release
    links = view.info(str(root), ["colors/blue", "colors/green", "colors/red", "colors/odd", "colors/none"])["links"]
    assert {name: found["release_id"] for name, found in links.items()} == {
        "colors/blue": "r1", "colors/green": "r2", "colors/red": None, "colors/odd": None, "colors/none": None,
    }  # fmt: skip
    assert links["colors/green"]["target"] == str(root / "releases" / "r2")
    assert links["colors/none"] == {"path": str(root / "colors" / "none"), "exists": False, "target": None,
                                    "release_id": None}  # fmt: skip
    assert links["colors/red"]["exists"] is True
    assert "links" in view.info(str(root)) and view.info(str(root))["links"] == {}


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("/srv/app/colors/blue", "relative to the deploy root"), ("../other/blue", "leaves the deploy root"),
     ("colors/../../x", "leaves the deploy root"), ("", "relative to the deploy root"),
     ("colors/plain", "is not a symlink")],
)  # fmt: skip
def test_info_refuses_bad_links(tmp_path, name, fragment):
    root = tmp_path / "app"
    build(tmp_path, root, "r1")
    (root / "colors").mkdir()
    (root / "colors" / "plain").write_text("not a link")
    with pytest.raises(ReleaseError, match=fragment):
        view.info(str(root), ["colors/blue", name] if name != "colors/plain" else [name])
