# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.stackops.platform.plugins.module_utils.textfile_metrics import (
    TextfileError,
    check_path,
    render,
    write,
)

MARKER = {
    "name": "stackops_deploy_event_timestamp_seconds",
    "help": "Unix time of the last deploy.",
    "labels": {"app": "api", "release": 'r"1\\x\ny'},
    "value": "1796281200.125",
}


def test_render_escapes_label_values_and_keeps_the_order():
    text = render([MARKER, {"name": "up_total", "help": "a\nb", "type": "counter", "value": 3}])
    assert text == (
        "# HELP stackops_deploy_event_timestamp_seconds Unix time of the last deploy.\n"
        "# TYPE stackops_deploy_event_timestamp_seconds gauge\n"
        'stackops_deploy_event_timestamp_seconds{app="api",release="r\\"1\\\\x\\ny"} 1796281200.125\n'
        "# HELP up_total a\\nb\n"
        "# TYPE up_total counter\n"
        "up_total 3.0\n"
    )


@pytest.mark.parametrize(("value", "shown"), [("NaN", "NaN"), (float("inf"), "+Inf"), ("-inf", "-Inf"), (0, "0.0")])
def test_render_special_values(value, shown):
    assert render([{"name": "x", "help": "h", "value": value}]).endswith(f"x {shown}\n")


@pytest.mark.parametrize(
    ("families", "words"),
    [
        ([dict(MARKER, name="9bad")], "metric name '9bad'"),
        ([dict(MARKER, name="a-b")], "metric name 'a-b'"),
        ([dict(MARKER, labels={"bad-label": "x"})], "label name 'bad-label'"),
        ([dict(MARKER, labels={"__name__": "x"})], "label name '__name__'"),
        ([dict(MARKER, value="soon")], "value 'soon' is not a number"),
        ([dict(MARKER, value=True)], "value True is not a number"),
        ([dict(MARKER, help="  ")], "give a help text"),
        ([dict(MARKER, type="histogram")], "type 'histogram'"),
        ([MARKER, MARKER], "is given twice"),
        ([], "no metrics given"),
    ],
)
def test_render_refuses_bad_input_naming_it(families, words):
    with pytest.raises(TextfileError) as raised:
        render(families)
    assert words in str(raised.value)


def test_write_creates_the_directory_with_its_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "textfile" / "stackops_deploy_api.prom"
    assert write(str(path), render([MARKER]), directory_mode=0o775) is True
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o775
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == render([MARKER])
    assert os.listdir(path.parent) == ["stackops_deploy_api.prom"]
    assert write(str(path), "x 1.0\n", directory_mode=0o775) is False and path.read_text() == "x 1.0\n"


def test_write_refuses_a_missing_directory_without_a_mode_and_a_file_in_its_place(tmp_path):
    with pytest.raises(TextfileError, match="does not exist"):
        write(str(tmp_path / "missing" / "m.prom"), "x 1.0\n")
    (tmp_path / "file").write_text("")
    with pytest.raises(TextfileError, match="exists but is not a directory"):
        write(str(tmp_path / "file" / "m.prom"), "x 1.0\n", directory_mode=0o775)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("path", ["/var/lib/m.txt", "/var/lib/.prom", "/var/lib/m.prom.tmp"])
def test_check_path_wants_a_prom_file(path):
    with pytest.raises(TextfileError, match=r"must name a file ending in \.prom"):
        check_path(path)
