"""Shared by the role runner tests: a one-task play that applies a role, and the failure messages of a run."""


def role_play(role, role_vars):
    return [
        {
            "name": f"apply {role}",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Apply the role",
                    "ansible.builtin.include_role": {"name": f"stackops.platform.{role}"},
                    "vars": role_vars,
                }
            ],
        }
    ]


def failure_messages(run):
    return " ".join(str(e["res"].get("msg", "")) for e in run.results if e["event"] == "runner_on_failed")
