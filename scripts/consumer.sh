#!/usr/bin/env bash
# The collection as a stranger uses it: build the tarball, install it into an empty collections path,
# copy the consumer project (tests/consumer) outside the checkout and run it from there against one
# container (consumer-app, 172.30.62.0/24): site (postgres, redis, api, worker), deploy of the sample
# release with the collection's own playbook (stackops.platform.deploy), verify.
#   scripts/consumer.sh            (needs a Docker engine and the Molecule base image)
# The consumer sees only the install dir and the ansible package's bundled collections: no roles path,
# no playbook, inventory or config from this checkout. Prints the tarball name and the recaps.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
use_project_env

work=$(mktemp -d "${TMPDIR:-/tmp}/stackops-consumer.XXXXXX")
[[ "$work" != "$REPO_ROOT"* ]] || die "temporary dir $work is inside the checkout"
project="$work/project"
install="$work/collections"
cleanup() {
  (cd "$project" 2>/dev/null && ansible-playbook containers.yml -e consumer_state=absent >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The tarball, built from this checkout.
ansible-galaxy collection build --output-path "$work/dist" "$REPO_ROOT" >/dev/null
tarball=$(ls "$work"/dist/stackops-platform-*.tar.gz)
echo "tarball: $(basename "$tarball") ($(stat -c %s "$tarball") bytes)"

# 2. The consumer's environment: nothing of this checkout or of the harness' collections path.
unset ANSIBLE_CONFIG ANSIBLE_ROLES_PATH ANSIBLE_COLLECTIONS_PATH ANSIBLE_PLAYBOOK_DIR
bundled=$(python3 -c 'import os, ansible_collections.ansible.posix as m; print(os.path.dirname(os.path.dirname(os.path.dirname(list(m.__path__)[0]))))')
export ANSIBLE_COLLECTIONS_PATH="$install:$bundled"
export ANSIBLE_NOCOLOR=1 CONSUMER_IMAGE="$MOLECULE_BASE_IMAGE"
mkdir -p "$install"
# Galaxy is not reachable offline: the dependencies (galaxy.yml) come from the ansible package.
ansible-galaxy collection install --offline --no-deps "$tarball" -p "$install"
cp -r "$REPO_ROOT/tests/consumer" "$project"
cd "$project"
export ANSIBLE_CONFIG="$project/ansible.cfg"

# 3. Prove the collection resolves to the install dir only, and the config names nothing of the checkout.
found=$(ansible-galaxy collection list stackops.platform --format json)
paths=$(python3 -c 'import json,sys; print("\n".join(p for p, c in json.load(sys.stdin).items() if "stackops.platform" in c))' <<<"$found")
echo "stackops.platform found in: $paths"
[ "$paths" = "$install/ansible_collections" ] || die "stackops.platform resolves to '$paths', want only $install/ansible_collections"
mod=$(ansible-doc --json stackops.platform.release | python3 -c 'import json,sys; print(json.load(sys.stdin)["stackops.platform.release"]["doc"]["filename"])')
echo "stackops.platform.release loads from: $mod"
[[ "$mod" == "$install/"* ]] || die "stackops.platform.release loads from $mod, outside $install"
# (The virtualenv may live in the checkout: its site-packages, the ansible package, is the one allowed path.)
if ansible-config dump | sed "s|$bundled||g" | grep -F "$REPO_ROOT"; then
  die "the consumer's configuration names the checkout $REPO_ROOT"
fi
if grep -rF "$REPO_ROOT" "$project"; then die "the consumer project names the checkout $REPO_ROOT"; fi

# 4. Containers, site, the sample release deployed with the collection's playbook, verify.
# sed -n 1p reads all the output: head would close the pipe early (SIGPIPE, rc 141 under pipefail).
archive=$(bash "$REPO_ROOT/scripts/build-sample-release.sh" | sed -n 1p)
cp "$archive" "$work/"
version=$(basename "$archive" .tar.gz); version=${version#sample-app-}
recap() { awk '/PLAY RECAP/{p=1} p' ; }
for step in "containers.yml" "site.yml" "stackops.platform.deploy -e release_archive=$work/$(basename "$archive")" \
            "verify.yml -e expected_version=$version"; do
  log "consumer: ansible-playbook $step"
  # shellcheck disable=SC2086 # step carries its own arguments
  ansible-playbook $step >"$work/run.log" 2>&1 || { tail -n 80 "$work/run.log"; die "consumer: $step failed"; }
  echo "recap of $step:"; recap <"$work/run.log"
done
