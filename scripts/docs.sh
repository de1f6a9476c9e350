#!/usr/bin/env bash
# Build the collection's HTML docs (modules and role argument specs) with antsibull-docs + Sphinx, offline.
#   scripts/docs.sh [dest]     (default: $STACKOPS_CACHE/docs; the site lands in <dest>/build/html)
# Fails on any documentation error: antsibull-docs lint-collection-docs, antsibull-docs collection
# --fail-on-error, and every Sphinx warning except a reference into the Ansible docsite (docs.ansible.com
# cannot be reached offline, so those labels stay unresolved; a broken reference inside this collection fails).
# As root it runs in a network namespace of its own (unshare -n), which proves the build needs no network.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
use_project_env

DEST=${1:-$STACKOPS_CACHE/docs}
rm -rf "$DEST"; mkdir -p "$DEST"

offline=()
if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
  offline=(unshare -n)
  log "docs: building without network (unshare -n)"
fi

(cd "$REPO_ROOT" && "${offline[@]}" antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck .) || {
  echo "antsibull-docs lint-collection-docs found documentation errors"; exit 1; }

"${offline[@]}" antsibull-docs sphinx-init --use-current --fail-on-error --no-add-antsibull-docs-version \
  --dest-dir "$DEST" stackops.platform >/dev/null
# No inventories from the internet: the default mapping would try docs.python.org and docs.ansible.com.
echo 'intersphinx_mapping = {}' >>"$DEST/conf.py"

mkdir -p "$DEST/rst"; chmod og-w "$DEST/rst"
"${offline[@]}" antsibull-docs --config-file "$DEST/antsibull-docs.cfg" collection --cleanup everything \
  --fail-on-error --use-current --dest-dir "$DEST/rst" stackops.platform

"${offline[@]}" sphinx-build -M html "$DEST/rst" "$DEST/build" -q -c "$DEST" -w "$DEST/warnings.log" || {
  cat "$DEST/warnings.log"; exit 1; }
# Warnings left once references to the Ansible docsite (not to this collection) are set aside (action_plugins:
# the docsite page a module with an action plugin links to).
external_ref="WARNING: undefined label: '(ansible_collections\\.(ansible|community)\\.|ansible_configuration_settings|common_return_values|action_plugins)"
external=$(grep -c -E "$external_ref" "$DEST/warnings.log" || true)
if grep WARNING "$DEST/warnings.log" | grep -v -E "$external_ref"; then
  echo "docs: Sphinx warnings above"; exit 1
fi
site="$DEST/build/html/collections/stackops/platform"
rc=0
for role in "$REPO_ROOT"/roles/*/; do
  [ -f "$site/$(basename "$role")_role.html" ] || { echo "docs: no page for role $(basename "$role")"; rc=1; }
done
for mod in "$REPO_ROOT"/plugins/modules/*.py; do
  [ -f "$site/$(basename "$mod" .py)_module.html" ] || { echo "docs: no page for module $(basename "$mod" .py)"; rc=1; }
done
echo "docs: $(find "$site" -name '*.html' | wc -l) pages in $site ($external links to the Ansible docsite left unresolved offline):"
find "$site" -name '*.html' -printf '%f\n' | sort | paste -sd' '
exit "$rc"
