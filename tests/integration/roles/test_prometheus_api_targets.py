"""The prometheus role's api_targets entry point: one file_sd file per api host, or per host and app.

Run against localhost as the only monitoring host, with the target directory moved to a temporary one.
With several apps on a host each app writes its own file, so switching one app never drops another's target.
"""

import json
import sys


def targets_play(targets, app=None):
    role_vars = {"prometheus_api_targets": targets}
    if app is not None:
        role_vars["prometheus_api_targets_app"] = app
    return [
        {
            "name": "write api targets",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Write the targets",
                    "ansible.builtin.include_role": {
                        "name": "stackops.platform.prometheus",
                        "tasks_from": "api_targets.yml",
                    },
                    "vars": role_vars,
                }
            ],
        }
    ]


INVENTORY = f"[monitoring]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def run(playbook, tmp_path, targets, app=None):
    return playbook(
        targets_play(targets, app),
        inventory=INVENTORY,
        extravars={"_prometheus_api_file_sd_dir": str(tmp_path / "api")},
    )


def test_one_app_per_host_writes_host_file(playbook, tmp_path):
    result = run(playbook, tmp_path, [{"colour": "green", "address": "10.0.0.5:8002"}])
    assert result.failed() == 0
    written = json.loads((tmp_path / "api" / "localhost.json").read_text())
    assert written == [{"targets": ["10.0.0.5:8002"], "labels": {"host": "localhost", "colour": "green"}}]


def test_two_apps_keep_their_own_files(playbook, tmp_path):
    assert run(playbook, tmp_path, [{"colour": "blue", "address": "10.0.0.5:8101"}], app="web").failed() == 0
    assert run(playbook, tmp_path, [{"colour": "green", "address": "10.0.0.5:8112"}], app="admin").failed() == 0
    files = sorted(p.name for p in (tmp_path / "api").iterdir())
    assert files == ["localhost@admin.json", "localhost@web.json"]
    web = json.loads((tmp_path / "api" / "localhost@web.json").read_text())
    assert web == [{"targets": ["10.0.0.5:8101"], "labels": {"host": "localhost", "colour": "blue", "app": "web"}}]
    admin = json.loads((tmp_path / "api" / "localhost@admin.json").read_text())
    assert admin[0]["labels"]["app"] == "admin"
    assert admin[0]["targets"] == ["10.0.0.5:8112"]
