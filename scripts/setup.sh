#!/usr/bin/env bash
# Set up the controller: system packages (root on Debian), the project virtualenv, pinned Python packages.
#   setup.sh            controller + test requirements
#   setup.sh --runtime  controller requirements only
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

reqs="$REPO_ROOT/requirements/test.txt"
[ "${1:-}" = --runtime ] && reqs="$REPO_ROOT/requirements/controller.txt"

# Debian packages the harness uses on the controller. Installed only when missing.
APT_PACKAGES=(python3-venv debootstrap docker.io rsync git shellcheck)
[ "${1:-}" = --runtime ] || APT_PACKAGES+=(postgresql nginx wrk redis-tools openssl)
# Observability tests: Prometheus test instances (promtool backfill) and a node exporter test instance.
[ "${1:-}" = --runtime ] || APT_PACKAGES+=(prometheus prometheus-node-exporter)
# Off-site backup tests: age encrypts and decrypts the copies (moto, from the venv, is the test S3 endpoint).
[ "${1:-}" = --runtime ] || APT_PACKAGES+=(age)
# Edge exporter tests: the edge role's mtail program runs under the real mtail binary.
[ "${1:-}" = --runtime ] || APT_PACKAGES+=(mtail)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts these on install; the harness starts its own instances when it needs them
    # (prometheus is there for promtool: the rules stage).
    for svc in postgresql nginx prometheus prometheus-node-exporter mtail; do
      if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
        systemctl stop "$svc" 2>/dev/null || true
      else
        service "$svc" stop >/dev/null 2>&1 || true
      fi
    done
  else
    die "missing Debian packages (${missing[*]}): install them as root and re-run"
  fi
fi

stamp="$STACKOPS_VENV/.requirements.sha256"
want=$(cat "$REPO_ROOT"/requirements/*.txt | sha256sum | cut -d' ' -f1)-$(basename "$reqs")
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "virtualenv $STACKOPS_VENV up to date"
else
  log "creating virtualenv $STACKOPS_VENV from $(basename "$reqs")"
  python3 -m venv "$STACKOPS_VENV"
  "$STACKOPS_VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  "$STACKOPS_VENV/bin/pip" install -q -r "$reqs" 2> >(grep -v 'is ignored: it is neither' >&2)
  echo "$want" >"$stamp"
fi
