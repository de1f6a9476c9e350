"""Stand-ins for the PostgreSQL client programs the backup core runs besides pg_dump (STANDIN, not PostgreSQL).

``psql`` answers the snapshot session (snapshot id, superuser flag, row counts); ``pg_dumpall`` writes a
globals file. Shared by the pg_backup core and module unit tests.
"""

from __future__ import annotations

STANDIN_PSQL = (
    "#!/bin/sh\n"
    "# STANDIN psql for unit tests\n"
    'while IFS= read -r line; do case "$line" in\n'
    "  *pg_export_snapshot*) echo 00000003-0000001B-1;;\n"
    "  *is_superuser*) echo on;;\n"
    "  *json_object_agg*) echo '{\"public.t\": 3}';;\n"
    "esac; done\n"
)
STANDIN_PG_DUMPALL = (
    "#!/bin/sh\n"
    "# STANDIN pg_dumpall for unit tests\n"
    'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
    'printf "CREATE ROLE app;\\n" > "$f"\n'
)


def add_standins(bin_dir):
    """Write the psql and pg_dumpall stand-ins into ``bin_dir`` (a pathlib.Path), executable."""
    for name, body in (("psql", STANDIN_PSQL), ("pg_dumpall", STANDIN_PG_DUMPALL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
