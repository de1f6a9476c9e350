"""awx/job_templates.yml and awx/surveys: valid AWX survey specs whose variables the playbooks read."""

from __future__ import annotations

import re

import pytest
import yaml
from awx_spec import REPO_ROOT, launch_extravars, load_survey, load_templates, playbook_texts, survey_errors

SPEC = load_templates()
TEMPLATES = {t["name"]: t for t in SPEC["job_templates"]}
# The templates issue 14 asks for; status is there for the read-only check.
REQUIRED = {"deploy", "rollback", "switch", "backup", "restore", "failover", "maintenance"}
# Extra vars the issues name for the playbooks being written elsewhere.
PENDING_VARS = {"failover": {"confirm_failover"}, "maintenance": {"app", "state"}}


def test_every_required_template_is_there():
    assert set(TEMPLATES) >= REQUIRED
    assert len(TEMPLATES) == len(SPEC["job_templates"]), "a template name is used twice"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_playbook_exists_or_is_pending(name):
    template = TEMPLATES[name]
    playbook = REPO_ROOT / template["playbook"]
    assert playbook.is_file() or template.get("pending") is True, (
        f"{name}: {template['playbook']} does not exist and the template is not marked pending"
    )


@pytest.mark.parametrize("name", sorted(t for t in TEMPLATES if TEMPLATES[t].get("survey")))
def test_survey_is_valid_awx_spec(name):
    assert survey_errors(load_survey(TEMPLATES[name])) == []


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_survey_variables_are_what_the_playbook_reads(name):
    template = TEMPLATES[name]
    survey = load_survey(template) or {"spec": []}
    variables = {q["variable"] for q in survey["spec"]} | set(template.get("extra_vars") or {})
    if name in PENDING_VARS:
        assert variables == PENDING_VARS[name], f"{name}: the issue names {sorted(PENDING_VARS[name])}"
    playbook = REPO_ROOT / template["playbook"]
    if not playbook.is_file():
        pytest.skip(f"{template['playbook']} is pending")
    text = playbook_texts(playbook)
    for var in variables:
        assert re.search(rf"\b{var}\b", text), f"{name}: {template['playbook']} never reads {var}"
    # Every choice offered must be a value the playbook names (e.g. switch's color list).
    for q in survey["spec"]:
        for choice in q.get("choices", []):
            assert re.search(rf"['\"]{re.escape(choice)}['\"]", text), (
                f"{name}: {template['playbook']} does not name choice {choice!r} of {q['variable']}"
            )


@pytest.mark.parametrize("inventory", [i["name"] for i in SPEC["inventories"]])
def test_inventories_come_from_the_project_with_their_guardrails(inventory):
    source = next(i for i in SPEC["inventories"] if i["name"] == inventory)
    assert source["source"] == "scm" and source["source_project"] == SPEC["project"]["name"]
    hosts = REPO_ROOT / source["source_path"]
    assert hosts.is_file(), source["source_path"]
    guardrails = yaml.safe_load((hosts.parent / "group_vars" / "all" / "guardrails.yml").read_text())
    # The play-level guardrails reach AWX jobs only as extra vars: they must equal the inventory's file.
    assert SPEC["environment_extra_vars"][inventory] == guardrails


def test_launch_fills_defaults_and_refuses_bad_answers():
    restore = TEMPLATES["restore"]
    extravars = launch_extravars(restore, "stackops-production", {"database": "app"})
    assert extravars["source"] == "latest" and extravars["restore_mode"] == "replace"
    assert extravars["restore_requires_confirmation"] is True and extravars["deploy_serial"] == "30%"
    assert "confirm_restore" not in extravars, "an optional blank answer must leave the variable undefined"
    with pytest.raises(ValueError, match="database"):
        launch_extravars(restore, "stackops-production", {})
    with pytest.raises(ValueError, match="colour"):
        launch_extravars(TEMPLATES["switch"], "stackops-staging", {"colour": "blue"})


@pytest.mark.parametrize(
    ("question", "error"),
    [
        ({"type": "multiplechoice", "choices": ["a"], "default": "b"}, "is not a choice"),
        ({"type": "text", "default": ""}, "must be absent"),
        ({"type": "text", "required": True, "min": 0}, "min >= 1"),
        ({"type": "date"}, "is not one of"),
        ({"variable": "bad-name"}, "not an identifier"),
    ],
)
def test_survey_checker_refuses_bad_questions(question, error):
    base = {"question_name": "q", "variable": "v", "type": "text", "required": False, "min": 0, "max": 10}
    survey = {"name": "t", "description": "d", "spec": [dict(base, **question)]}
    assert any(error in e for e in survey_errors(survey)), survey_errors(survey)
