#!/usr/bin/env bash
# Run every test: lint, collection build + docs, ansible-test sanity and units, integration
# (pytest + ansible-runner against real PostgreSQL/nginx/files), then every Molecule scenario.
#   scripts/test.sh                      everything
#   STACKOPS_STAGES="lint units" scripts/test.sh    only some stages
#   STACKOPS_SCENARIOS="redis postgres" scripts/test.sh   only some Molecule scenarios
# Prints the wall time of each stage; stops the Docker engine if it started it.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

ALL_STAGES="setup engine image lint build ee docs sanity units rules integration consumer molecule"
STAGES=${STACKOPS_STAGES:-$ALL_STAGES}
: >"$STAGE_REPORT"
passed=0; failed=0; failures=()

want() { [[ " $STAGES " == *" $1 "* ]]; }
run_stage() {
  local name=$1; shift
  want "$name" || return 0
  if stage "$name" "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}
# Stages that everything after them needs: stop at once when they fail.
run_required() {
  run_stage "$@"
  [ "$failed" -eq 0 ] || { summary; exit 1; }
}

summary() {
  echo
  echo "Stage times:"
  cat "$STAGE_REPORT"
  [ "${#failures[@]}" -eq 0 ] || echo "Failed stages: ${failures[*]}"
  echo "stages: $passed passed, $failed failed"
}

started_engine=false
cleanup() {
  if $started_engine; then bash "$REPO_ROOT/scripts/docker-engine.sh" stop || true; fi
}
trap cleanup EXIT

engine() {
  # Stop at the end only an engine this run started (a stale pid file from an earlier run proves nothing).
  local was_up=false
  docker info >/dev/null 2>&1 && was_up=true
  bash "$REPO_ROOT/scripts/docker-engine.sh" start || return 1
  $was_up || started_engine=true
}

lint() {
  local rc=0
  yamllint --strict . || rc=1
  ruff check . || rc=1
  ansible-lint --profile production || rc=1
  return "$rc"
}

build() {
  local out="$STACKOPS_CACHE/build"
  rm -rf "$out"; mkdir -p "$out"
  ansible-galaxy collection build --output-path "$out" "$REPO_ROOT" || return 1
  ls -l "$out"/stackops-platform-*.tar.gz
  # Every role documents its argument spec; every module renders its docs.
  local roles role mod rc=0
  roles=$(ansible-doc -t role -l stackops.platform --json | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin))))')
  echo "roles documented: $roles"
  for role in "$REPO_ROOT"/roles/*/; do
    role=$(basename "$role")
    [[ "$role" == _* ]] && continue
    [[ " $roles " == *" stackops.platform.$role "* ]] || { echo "role $role has no argument spec"; rc=1; }
  done
  for mod in "$REPO_ROOT"/plugins/modules/*.py; do
    [ -e "$mod" ] || continue
    mod=$(basename "$mod" .py)
    ansible-doc "stackops.platform.$mod" >/dev/null || { echo "ansible-doc failed for $mod"; rc=1; }
  done
  return "$rc"
}

sanity() { bash "$REPO_ROOT/scripts/ansible-test.sh" sanity; }

units() {
  if compgen -G "$REPO_ROOT/tests/unit/plugins/*/test_*.py" >/dev/null; then
    bash "$REPO_ROOT/scripts/ansible-test.sh" units || return 1
  fi
  if [ -d "$REPO_ROOT/sample_app/tests" ]; then
    (cd "$REPO_ROOT" && pytest -q -p no:cacheprovider sample_app/tests) || return 1
  fi
}

# Alerting/recording rules: promtool unit tests, every rule shown firing and resolving.
rules() { bash "$REPO_ROOT/scripts/promtool-tests.sh"; }

# Two workers (STACKOPS_INTEGRATION_JOBS), a test file each at a time: every test starts its own services on
# free ports in its own temporary directory, so files never share anything.
integration() {
  (cd "$REPO_ROOT" && pytest -q -p no:cacheprovider -n "${STACKOPS_INTEGRATION_JOBS:-2}" --dist loadfile tests/integration)
}

# Execution environment build context and introspection (offline), HTML docs (offline), and the built
# tarball used from a consumer project outside the checkout (one container).
ee() { bash "$REPO_ROOT/scripts/ee.sh"; }
docs() { bash "$REPO_ROOT/scripts/docs.sh"; }
consumer() { bash "$REPO_ROOT/scripts/consumer.sh"; }

# One scenario; its log goes to the state dir and its time to the stage report.
molecule_one() {
  local s=$1 start rc=0
  start=$(date +%s)
  (cd "$REPO_ROOT" && molecule test -s "$s") >"$STACKOPS_STATE/molecule-$s.log" 2>&1 || rc=$?
  printf '  molecule %-16s %4ss %s\n' "$s" "$(( $(date +%s) - start ))" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" \
    | tee -a "$STAGE_REPORT"
  if [ "$rc" -ne 0 ]; then
    echo "---- last lines of $STACKOPS_STATE/molecule-$s.log"
    tail -n 150 "$STACKOPS_STATE/molecule-$s.log"
  fi
  return "$rc"
}

# The scenarios form one queue, longest first so the slow ones do not end up alone at the end. Lanes take
# the next scenario as they free up: STACKOPS_MOLECULE_JOBS of them (default 2) once the static stages are
# done, and the lane of the integration and consumer stages when those end.
molecule_queue() {
  local scenarios
  # One line, space-separated: the " $scenarios " matches below need spaces around each name.
  scenarios=${STACKOPS_SCENARIOS:-$(cd "$REPO_ROOT/molecule" && for d in */molecule.yml; do dirname "$d"; done | tr '\n' ' ')}
  local ordered=() s
  for s in fullstack firewall edge multiapp replica api postgres ssh prometheus worker grafana redis jaeger; do
    [[ " $scenarios " == *" $s "* ]] && ordered+=("$s")
  done
  for s in $scenarios; do
    [[ " ${ordered[*]} " == *" $s "* ]] || ordered+=("$s")
  done
  printf '%s\n' "${ordered[@]}" >"$STACKOPS_STATE/molecule-queue"
  rm -f "$STACKOPS_STATE/molecule-failed"
  export STAGE_REPORT STACKOPS_STATE REPO_ROOT
  # Mitogen's strategy for the scenarios (STACKOPS_MOLECULE_MITOGEN=0: stock linear, as users run it).
  # Stock Ansible starts a docker exec and a Python per task: on a loaded 2-core machine seconds each.
  if [ "${STACKOPS_MOLECULE_MITOGEN:-1}" = 1 ]; then
    export STACKOPS_MOLECULE_STRATEGY=mitogen_containers STACKOPS_MOLECULE_STRATEGY_PLUGINS="$REPO_ROOT/molecule/_strategy"
  fi
  # Molecule installs the collection it runs in under ~/.ansible/collections unless a symlink to
  # this checkout is already there: link it, so parallel scenarios never install over each other
  # and always run the code of this checkout.
  local user_coll="$HOME/.ansible/collections/ansible_collections/stackops"
  mkdir -p "$user_coll"
  [ -L "$user_coll/platform" ] || rm -rf "$user_coll/platform"
  ln -sfn "$REPO_ROOT" "$user_coll/platform"
}

# The next scenario of the queue (nothing once it is empty).
molecule_next() {
  local queue="$STACKOPS_STATE/molecule-queue"
  (
    flock 9
    head -n 1 "$queue"
    sed -i 1d "$queue"
  ) 9>"$queue.lock"
}

# One lane: scenarios from the queue until it is empty; a failure is recorded for the molecule stage.
molecule_lane() {
  local s
  while s=$(molecule_next) && [ -n "$s" ]; do
    molecule_one "$s" || echo "$s" >>"$STACKOPS_STATE/molecule-failed"
  done
}

molecule_all() {
  local jobs=${STACKOPS_MOLECULE_JOBS:-2} pids=() i
  for ((i = 0; i < jobs; i++)); do
    molecule_lane &
    pids+=($!)
  done
  wait "${pids[@]}"
  # The integration lane may still be running a scenario it took from the queue (this runs in the main
  # shell, the lane's parent, so it can wait for it).
  if [ -n "${beside_pid:-}" ]; then
    wait "$beside_pid" || true
    echo "---- scenarios run in the integration lane: $STACKOPS_STATE/stage-molecule-beside.log"
    cat "$STACKOPS_STATE/stage-molecule-beside.log" 2>/dev/null
  fi
  [ ! -s "$STACKOPS_STATE/molecule-failed" ]
}

run_required setup bash "$REPO_ROOT/scripts/setup.sh"
use_project_env
if want molecule || want image || want consumer; then
  run_required engine engine
  run_required image bash "$REPO_ROOT/scripts/base-image.sh"
  export MOLECULE_BASE_IMAGE; MOLECULE_BASE_IMAGE=$(cat "$STACKOPS_STATE/base-image")
fi
# The integration tests, then the consumer project, then scenarios from the queue run in a lane of their own
# from the start when molecule is wanted (their logs are printed once all are done).
beside=()
if want molecule; then
  for name in integration consumer; do
    if want "$name"; then beside+=("$name"); fi
  done
  molecule_queue
fi
if [ "${#beside[@]}" -gt 0 ]; then
  (
    for name in "${beside[@]}"; do
      rc=0
      stage "$name" "$name" >"$STACKOPS_STATE/stage-$name.log" 2>&1 || rc=$?
      echo "$rc" >"$STACKOPS_STATE/stage-$name.rc"
    done
    molecule_lane >"$STACKOPS_STATE/stage-molecule-beside.log" 2>&1
  ) &
  beside_pid=$!
fi
run_stage lint lint
run_stage build build
run_stage ee ee
run_stage docs docs
run_stage sanity sanity
run_stage units units
run_stage rules rules
if [ "${#beside[@]}" -gt 0 ]; then
  run_stage molecule molecule_all
  for name in "${beside[@]}"; do
    echo "---- stage $name (ran beside the others): $STACKOPS_STATE/stage-$name.log"
    cat "$STACKOPS_STATE/stage-$name.log"
    if [ "$(cat "$STACKOPS_STATE/stage-$name.rc" 2>/dev/null)" = 0 ]; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1)); failures+=("$name")
    fi
  done
else
  run_stage integration integration
  run_stage consumer consumer
  run_stage molecule molecule_all
fi
summary
[ "$failed" -eq 0 ]
