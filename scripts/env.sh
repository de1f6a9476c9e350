# shellcheck shell=bash
# Source this in a shell to work on the collection by hand: `. scripts/env.sh`
# Activates the project virtualenv and makes this checkout resolvable as stackops.platform.
_stackops_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
set +u
# shellcheck source=scripts/lib.sh
. "$_stackops_here/lib.sh"
set +euo pipefail
use_project_env
unset _stackops_here
