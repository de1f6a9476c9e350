# shellcheck shell=bash
# Shared helpers for the harness scripts: logging, stage timing, paths.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACKOPS_CACHE=${STACKOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stackops-platform}
STACKOPS_VENV=${STACKOPS_VENV:-$REPO_ROOT/.venv}
STACKOPS_STATE=${STACKOPS_STATE:-$STACKOPS_CACHE/state}
# Grafana/Jaeger stand-in archives for offline runs (see tests/standins).
STACKOPS_STANDIN_DIR=${STACKOPS_STANDIN_DIR:-$STACKOPS_STATE/standins}
export REPO_ROOT STACKOPS_CACHE STACKOPS_VENV STACKOPS_STATE STACKOPS_STANDIN_DIR
mkdir -p "$STACKOPS_CACHE" "$STACKOPS_STATE"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33m!!\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mERROR:\033[0m %s\n' "$*" >&2; exit 1; }

# Stage timing: `stage NAME command...` runs the command and records its wall time.
STAGE_REPORT=${STAGE_REPORT:-$STACKOPS_STATE/stage-times.txt}
stage() {
  local name=$1; shift
  local start end rc=0
  start=$(date +%s)
  log "stage ${name}: start"
  "$@" || rc=$?
  end=$(date +%s)
  printf '%-28s %5ss  %s\n' "$name" "$((end - start))" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (rc=$rc)")" | tee -a "$STAGE_REPORT" >&2
  return "$rc"
}

# Activate the project virtualenv and point Ansible at this checkout as stackops.platform.
use_project_env() {
  [ -x "$STACKOPS_VENV/bin/ansible" ] || die "virtualenv missing: run scripts/setup.sh first"
  # shellcheck disable=SC1091
  . "$STACKOPS_VENV/bin/activate"
  local coll="$STACKOPS_CACHE/collections/ansible_collections/stackops"
  mkdir -p "$coll"
  ln -sfn "$REPO_ROOT" "$coll/platform"
  export ANSIBLE_COLLECTIONS_PATH="$STACKOPS_CACHE/collections"
  export ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg"
  export MOLECULE_BASE_IMAGE
  MOLECULE_BASE_IMAGE=$(cat "$STACKOPS_STATE/base-image" 2>/dev/null || echo "stackops/molecule-debian:bookworm")
}
