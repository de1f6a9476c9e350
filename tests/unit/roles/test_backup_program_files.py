# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postgres role installs module_utils files on the database host for the backup and drill timers
(_postgres_backup_modules in roles/postgres/vars/main.yml). The timers run from those files alone, so every
module_utils file they import must be in the list: a missing one fails only at the first timer run."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = "ansible_collections.stackops.platform.plugins.module_utils"


def imported_module_utils(name: str) -> set[str]:
    tree = ast.parse((ROOT / "plugins" / "module_utils" / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                found.update(alias.name for alias in node.names)
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module.rsplit(".", 1)[1])
    return found


def test_every_imported_module_utils_file_is_installed():
    installed = yaml.safe_load((ROOT / "roles" / "postgres" / "vars" / "main.yml").read_text())[
        "_postgres_backup_modules"
    ]
    missing = {name: sorted(imported_module_utils(name) - set(installed)) for name in installed}
    assert {name: gone for name, gone in missing.items() if gone} == {}
