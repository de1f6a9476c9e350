"""Reading awx/job_templates.yml and its survey specs, and turning a launch into extra vars the way AWX does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
AWX_DIR = REPO_ROOT / "awx"
# AWX's survey question types (awx/main/models/mixins.py, SurveyJobTemplateMixin).
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# include_tasks / import_tasks / vars_files references inside playbooks/.
INCLUDED = re.compile(r"(?:include_tasks|import_tasks):\s*(\S+\.yml)|^\s*-\s*(vars/\S+\.yml)", re.M)
# A role entry point of this collection (include_role/import_role with tasks_from): the role reads the variables.
ROLE_TASKS = re.compile(r"name:\s*stackops\.platform\.(\w+)\s*\n\s*tasks_from:\s*([\w./-]+\.yml)")


def load_templates() -> dict[str, Any]:
    return yaml.safe_load((AWX_DIR / "job_templates.yml").read_text())


def load_survey(template: dict[str, Any]) -> dict[str, Any] | None:
    if not template.get("survey"):
        return None
    return json.loads((AWX_DIR / template["survey"]).read_text())


def playbook_texts(playbook: Path) -> str:
    """The playbook's text plus every task/vars file it includes, transitively (playbooks/tasks, playbooks/vars, and
    the role task files it enters with tasks_from)."""
    seen: set[Path] = set()
    todo = [playbook]
    texts = []
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        text = path.read_text()
        texts.append(text)
        for match in INCLUDED.finditer(text):
            name = match.group(1) or match.group(2)
            for base in (path.parent, playbook.parent):
                if (base / name).is_file():
                    todo.append(base / name)
                    break
        for match in ROLE_TASKS.finditer(text):
            todo.append(REPO_ROOT / "roles" / match.group(1) / "tasks" / match.group(2))
    return "\n".join(texts)


def survey_errors(survey: dict[str, Any]) -> list[str]:
    """What AWX would refuse, or what would send a playbook a value it cannot take."""
    errors = []
    for key in ("name", "description", "spec"):
        if key not in survey:
            errors.append(f"survey has no {key!r}")
    seen = set()
    for q in survey.get("spec", []):
        var = q.get("variable", "")
        where = f"question {var or q.get('question_name')!r}"
        if not VARIABLE.match(var):
            errors.append(f"{where}: variable is not an identifier")
        if var in seen:
            errors.append(f"{where}: variable asked twice")
        seen.add(var)
        if not q.get("question_name"):
            errors.append(f"{where}: no question_name")
        if q.get("type") not in SURVEY_TYPES:
            errors.append(f"{where}: type {q.get('type')!r} is not one of {sorted(SURVEY_TYPES)}")
        if not isinstance(q.get("required"), bool):
            errors.append(f"{where}: required must be true or false")
        if q.get("type") in ("multiplechoice", "multiselect"):
            choices = q.get("choices")
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c for c in choices):
                errors.append(f"{where}: choices must be a non-empty list of strings")
            elif "default" in q and q["default"] not in choices:
                errors.append(f"{where}: default {q['default']!r} is not a choice")
        if q.get("type") in ("text", "textarea", "password"):
            lo, hi = q.get("min", 0), q.get("max", 1024)
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
                errors.append(f"{where}: min/max must be integers with 0 <= min <= max")
            if q.get("required") and lo < 1:
                errors.append(f"{where}: a required text answer needs min >= 1")
            default = q.get("default")
            # AWX sends a default of "" as the answer: optional questions carry no default so that a
            # blank answer leaves the variable undefined and the playbook's own default applies.
            if default == "" or (default is not None and not lo <= len(default) <= hi):
                errors.append(f"{where}: default {default!r} must be absent or within min/max")
    return errors


def launch_extravars(template: dict[str, Any], inventory: str, answers: dict[str, Any]) -> dict[str, Any]:
    """Extra vars of a launch, in AWX's order: environment vars, the template's, survey defaults, answers."""
    spec = load_templates()
    extravars = dict(spec.get("environment_extra_vars", {}).get(inventory, {}))
    extravars.update(template.get("extra_vars") or {})
    survey = load_survey(template)
    asked = {q["variable"]: q for q in (survey or {}).get("spec", [])}
    for var, q in asked.items():
        if "default" in q:
            extravars[var] = q["default"]
    unknown = set(answers) - set(asked)
    if unknown:
        raise ValueError(f"answers for questions the survey does not ask: {sorted(unknown)}")
    extravars.update(answers)
    missing = [v for v, q in asked.items() if q["required"] and v not in extravars]
    if missing:
        raise ValueError(f"required survey answers missing: {missing}")
    return extravars
