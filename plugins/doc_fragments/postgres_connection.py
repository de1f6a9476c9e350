# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by pg_backup and pg_restore (libpq client programs, no psycopg2).
    DOCUMENTATION = r"""
options:
  host:
    description:
      - Server host name or IP address, or the directory of the server's Unix socket.
      - Unset means the libpq default (the local socket).
    type: str
  port:
    description:
      - Server port. Unset means the libpq default (5432).
    type: int
  user:
    description:
      - Role to connect as. Unset means the libpq default (the OS user name).
    type: str
  password:
    description:
      - Password for O(user). Passed to the client programs in the E(PGPASSWORD) environment variable,
        never on a command line, and never returned.
    type: str
  passfile:
    description:
      - Path of a libpq password file (E(PGPASSFILE)), an alternative to O(password).
    type: path
  bin_dir:
    description:
      - Directory holding C(pg_dump), C(pg_restore) and C(psql).
      - Unset means the programs found in E(PATH), else the newest C(/usr/lib/postgresql/*/bin).
      - Use client programs at least as new as the server.
    type: path
requirements:
  - PostgreSQL client programs (C(pg_dump), C(pg_restore), C(psql)) on the target. No Python database driver is needed.
"""
