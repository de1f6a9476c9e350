"""pg_backup module: argument spec in lockstep with the core, check mode, failures, no password leaks."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_core import BACKUP_OPTIONS
from ansible_collections.stackops.platform.plugins.modules import pg_backup
from ansible_collections.stackops.platform.tests.unit.plugins.pg_fakes import add_standins

SECRET = "module-pa55-never-echoed"


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        pg_backup.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def fake_bin(tmp_path, dump_body):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pg_dump").write_text("#!/bin/sh\n" + dump_body)
    (bin_dir / "pg_restore").write_text("#!/bin/sh\necho ';     Dumped from database version: 15.1'\n")
    for tool in ("pg_dump", "pg_restore"):
        (bin_dir / tool).chmod(0o755)
    add_standins(bin_dir)
    return str(bin_dir)


GOOD = (
    'case "$1" in --version) echo "pg_dump (PostgreSQL) 15.1"; exit 0;; esac\n'
    'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
    'printf "PGDMP" > "$f"\n'
)


def test_argument_spec_matches_core_options():
    spec = pg_backup.argument_spec()
    assert set(spec) == set(BACKUP_OPTIONS) | {"offsite"}
    assert spec["password"]["no_log"] is True
    for key, (_kind, default) in BACKUP_OPTIONS.items():
        assert spec[key].get("default") == default, key


def test_check_mode_writes_nothing(tmp_path, capsys):
    args = {"database": "app", "backup_dir": str(tmp_path), "bin_dir": fake_bin(tmp_path, GOOD),
            "password": SECRET, "_ansible_check_mode": True}
    code, result = run_module(capsys, args)
    assert code == 0 and result["changed"] is True
    assert result["path"].startswith(str(tmp_path / "app" / "app_")) and result["path"].endswith(".dump")
    assert not (tmp_path / "app").exists()
    assert result["diff"]["before"] == {"backups": []}


def test_apply(tmp_path, capsys):
    args = {"database": "app", "backup_dir": str(tmp_path), "bin_dir": fake_bin(tmp_path, GOOD),
            "password": SECRET}
    code, result = run_module(capsys, args)
    assert code == 0 and result["changed"] is True
    assert os.path.isfile(result["path"]) and os.path.isfile(result["manifest_path"])
    assert result["diff"]["after"]["backups"] == [os.path.basename(result["path"])]
    assert SECRET not in json.dumps(result)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backup_dir": "/nonexistent/x"}, "backup_dir /nonexistent/x does not exist"),
        ({"format": "tar"}, "value of format must be one of: custom, directory, got: tar"),
        ({"compress": 12}, "compress must be between 0 and 9, got 12"),
    ],
)
def test_bad_input_fails_naming_the_value(tmp_path, capsys, overrides, message):
    args = {"database": "app", "backup_dir": str(tmp_path), "bin_dir": fake_bin(tmp_path, GOOD), **overrides}
    code, result = run_module(capsys, args)
    assert code == 1 and result["failed"] is True and message in result["msg"]
    assert not (tmp_path / "app").exists() or os.listdir(tmp_path / "app") == [".lock"]


def test_pg_dump_failure_is_not_changed_and_hides_password(tmp_path, capsys):
    body = f'echo "pg_dump: error: auth failed for {SECRET}" >&2; exit 1\n'
    args = {"database": "app", "backup_dir": str(tmp_path), "bin_dir": fake_bin(tmp_path, body), "password": SECRET}
    code, result = run_module(capsys, args)
    assert code == 1 and result.get("changed", False) is False
    assert "pg_dump failed with exit code 1" in result["msg"]
    assert SECRET not in json.dumps(result)
    assert os.listdir(tmp_path / "app") == [".lock"]
