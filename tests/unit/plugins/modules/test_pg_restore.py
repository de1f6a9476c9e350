"""pg_restore module: argument spec in lockstep with the core and failures reported without change."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import PgBackupError
from ansible_collections.stackops.platform.plugins.module_utils.pg_restore_core import RESTORE_OPTIONS
from ansible_collections.stackops.platform.plugins.modules import pg_restore


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        pg_restore.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_argument_spec_matches_core_options():
    spec = pg_restore.argument_spec()
    assert set(spec) == set(RESTORE_OPTIONS) | {"offsite", "offsite_identity", "offsite_identity_file", "download_dir"}
    assert spec["password"]["no_log"] is True
    for key, (_kind, default) in RESTORE_OPTIONS.items():
        assert spec[key].get("default") == default, key


@pytest.mark.parametrize("check_mode", [False, True])
def test_passes_check_mode_and_reports(monkeypatch, capsys, check_mode):
    seen = {}

    def fake_run_restore(params, check_mode=False):
        seen.update(params=params, check_mode=check_mode)
        return {"changed": True, "action": "replace", "target": "app", "source": "/b/app/x.dump",
                "previous": "app_pre_restore_1", "warnings": ["could not drop"]}

    monkeypatch.setattr(pg_restore, "run_restore", fake_run_restore)
    code, result = run_module(capsys, {"database": "app", "mode": "replace", "_ansible_check_mode": check_mode})
    assert code == 0 and result["changed"] is True
    assert seen["check_mode"] is check_mode and seen["params"]["mode"] == "replace"
    assert result["diff"]["after"]["previous"] == "app_pre_restore_1"
    assert "could not drop" in json.dumps(result["warnings"])


def test_core_error_fails_with_message(monkeypatch, capsys):
    def failing(params, check_mode=False):
        raise PgBackupError("checksum verification failed for /b/app/x.dump")

    monkeypatch.setattr(pg_restore, "run_restore", failing)
    code, result = run_module(capsys, {"database": "app", "source": "/b/app/x.dump"})
    assert code == 1 and result["msg"] == "checksum verification failed for /b/app/x.dump"
    assert result.get("changed", False) is False


def test_bad_mode_is_refused(capsys):
    code, result = run_module(capsys, {"database": "app", "mode": "merge"})
    assert code == 1 and "value of mode must be one of: new, replace, got: merge" in result["msg"]
