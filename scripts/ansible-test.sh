#!/usr/bin/env bash
# Run ansible-test on a copy of this checkout laid out as ansible_collections/stackops/platform.
#   ansible-test.sh sanity [ansible-test args]    e.g. sanity --test validate-modules
#   ansible-test.sh units  [ansible-test args]
# The copy holds the files git tracks plus untracked, non-ignored ones (what a commit would hold).
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
use_project_env

# ansible-test installs its own pinned test requirements (pylint, voluptuous, ...): give it a
# virtualenv of its own so they never clash with the project's tools. Its --venv mode needs to
# pip-install its requirements; --local keeps everything in this venv.
at_venv="$STACKOPS_CACHE/ansible-test-venv"
core_pin=$(grep -E '^ansible-core==' "$REPO_ROOT/requirements/controller.txt")
if [ "$(cat "$at_venv/.pin" 2>/dev/null)" != "$core_pin" ]; then
  log "creating $at_venv ($core_pin)"
  rm -rf "$at_venv"
  python3 -m venv "$at_venv"
  "$at_venv/bin/pip" install -q "$core_pin" 2> >(grep -v 'is ignored: it is neither' >&2)
  echo "$core_pin" >"$at_venv/.pin"
fi
export PATH="$at_venv/bin:$PATH"
# ansible-test bootstraps pip in each per-test venv with a get-pip script it downloads from a
# host that is not reachable here; give it the offline replacement under the cached name.
pip_pin=$("$at_venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g; from types import SimpleNamespace as N; print(g(N(version="3.11"))["pip"])')
mkdir -p "$HOME/.ansible/test/cache"
cp "$REPO_ROOT/scripts/ansible-test-get-pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_pin//./_}.py"

# A private copy per run, so parallel runs never overwrite each other's tree.
work=$(mktemp -d "$STACKOPS_CACHE/ansible-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/stackops/platform"
mkdir -p "$dest"
(cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$REPO_ROOT" && rsync -a --from0 --ignore-missing-args --files-from=- ./ "$dest/")
cd "$dest" || exit 1
cmd=$1; shift
case "$cmd" in
  sanity) ansible-test sanity --local --requirements --python 3.11 --color no "$@" ;;
  units)  ansible-test units --local --requirements --python 3.11 --color no "$@" ;;
  *) die "usage: $0 sanity|units [args]" ;;
esac
