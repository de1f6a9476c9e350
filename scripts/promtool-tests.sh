#!/usr/bin/env bash
# Unit-test the Prometheus alerting and recording rules (the CI stage `rules`):
# render every roles/prometheus/templates/rules/*.rules.yml.j2 with the role's defaults and
# tests/promtool/vars.yml (tests/promtool/render.yml, the role's own template engine), check each with
# `promtool check rules`, fail when a rule has no test that makes it fire and then resolve
# (tests/promtool/rule_coverage.py), then run `promtool test rules` on tests/promtool/<group>.test.yml.
# Prints the number of rules and of tests. promtool: Debian's `prometheus` package (scripts/setup.sh).
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null 2>&1 || die "promtool missing: install Debian's prometheus package (scripts/setup.sh)"
[ -n "${VIRTUAL_ENV:-}" ] || use_project_env

out=$(mktemp -d "${TMPDIR:-/tmp}/stackops-promtool.XXXXXX")
trap 'rm -rf "$out"' EXIT

ansible-playbook -i "$REPO_ROOT/tests/promtool/inventory.yml" "$REPO_ROOT/tests/promtool/render.yml" \
  -e "promtool_out_dir=$out" >"$out/render.log" 2>&1 || { cat "$out/render.log"; die "rendering the rule templates failed"; }
rm -f "$out/render.log"
cp "$REPO_ROOT"/tests/promtool/*.test.yml "$out/"

rc=0
# The coverage check itself is tested first: a checker that cannot fail would prove nothing.
python3 -m pytest -q -p no:cacheprovider "$REPO_ROOT/tests/promtool/test_rule_coverage.py" || rc=1
for f in "$out"/*.rules.yml; do
  promtool check rules "$f" >/dev/null 2>"$out/check.err" || { echo "promtool check rules $(basename "$f"):"; cat "$out/check.err"; rc=1; }
done
python3 "$REPO_ROOT/tests/promtool/rule_coverage.py" "$out" || rc=1
(cd "$out" && promtool test rules ./*.test.yml) || rc=1
[ "$rc" -eq 0 ] && log "every rule fires and resolves in its promtool test"
exit "$rc"
