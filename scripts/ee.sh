#!/usr/bin/env bash
# Execution environment, offline: build the collection tarball, render the ansible-builder build context,
# check it, and show the dependencies ansible-builder reads from our collection and the ones it depends on.
#   scripts/ee.sh        then, with a registry: docker build -t <registry>/stackops-ee:<version> build/ee/context
# Prints the context's directory listing and `ansible-builder introspect` output.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
use_project_env

out="$REPO_ROOT/build/ee"
rm -rf "$out"; mkdir -p "$out"
ansible-galaxy collection build --output-path "$out" "$REPO_ROOT" >/dev/null
# A fixed name: execution-environment.yml and ee/requirements.yml name the file.
mv "$out"/stackops-platform-*.tar.gz "$out/stackops-platform.tar.gz"

(cd "$REPO_ROOT" && ansible-builder create -f execution-environment.yml -c "$out/context" --output-filename Containerfile)
echo "build context (ansible-builder create):"
(cd "$out/context" && find . -printf '%y %6s %p\n' | sort -k3)

rc=0
grep -q 'ansible-galaxy collection install.*-r requirements.yml' "$out/context/Containerfile" \
  || { echo "Containerfile installs no collections"; rc=1; }
# The galaxy requirements resolve from the context (ansible-builder runs them in /build = _build):
# install our collection from there, without its Galaxy dependencies, into a scratch path.
work=$(mktemp -d "${TMPDIR:-/tmp}/stackops-ee.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$out/context/_build" && ANSIBLE_COLLECTIONS_PATH="$work/collections" ansible-galaxy collection install --no-deps -r requirements.yml -p "$work/collections") >/dev/null \
  || { echo "ee/requirements.yml does not install from the build context"; rc=1; }

# Introspect what ansible-builder will install: our collection plus the collections galaxy.yml depends on
# (taken from the ansible package, as the image would get them from Galaxy).
bundled=$(python3 -c 'import os, ansible_collections.ansible.posix as m; print(os.path.dirname(os.path.dirname(list(m.__path__)[0])))')
deps=$(python3 -c 'import yaml,sys; print(" ".join(yaml.safe_load(open(sys.argv[1]))["dependencies"]))' "$REPO_ROOT/galaxy.yml")
for dep in $deps; do
  mkdir -p "$work/collections/ansible_collections/${dep%%.*}"
  ln -s "$bundled/${dep%%.*}/${dep#*.}" "$work/collections/ansible_collections/${dep%%.*}/${dep#*.}"
done
echo "ansible-builder introspect (stackops.platform and its dependencies: $deps):"
ansible-builder introspect --sanitize "$work/collections" | tee "$work/introspect.txt"
# Our declared dependencies must be what ansible-builder reads for stackops.platform.
for req in docker requests psycopg2-binary openssh-client coreutils; do
  grep -Eq "^- '${req}[ >=\[].*# from collection stackops\.platform" "$work/introspect.txt" \
    || { echo "introspect does not show $req from stackops.platform"; rc=1; }
done
exit "$rc"
