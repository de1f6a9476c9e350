#!/usr/bin/env bash
# Build (or reuse) the Molecule base image: Debian bookworm + systemd + python3.
# The tag carries a hash of the recipe, so the image is rebuilt only when the recipe changes.
# Registry reachable: `docker build` from debian:bookworm. Otherwise: debootstrap from the
# host's configured Debian mirror, then `docker import`.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

recipe_dir="$REPO_ROOT/molecule/_image"
hash=$(cat "$recipe_dir/Dockerfile" "$recipe_dir/packages.txt" "$0" | sha256sum | cut -c1-12)
tag="stackops/molecule-debian:bookworm-$hash"

if docker image inspect "$tag" >/dev/null 2>&1; then
  log "base image $tag cached: reusing it"
  echo "$tag" >"$STACKOPS_STATE/base-image"
  exit 0
fi

# The Debian mirror this host already uses (deb822 or one-line sources).
host_mirror() {
  local m
  m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}' | head -n1)
  [ -n "$m" ] || m=$(grep -hsE '^deb (\[[^]]*\] )?https?://[^ ]+ bookworm ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                     | sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}' | head -n1)
  echo "${m:-http://deb.debian.org/debian}"
}

build_from_registry() {
  STACKOPS_IMAGE_SOURCE=${STACKOPS_IMAGE_SOURCE:-auto}
  [ "$STACKOPS_IMAGE_SOURCE" = debootstrap ] && return 1
  log "trying the registry: docker pull debian:bookworm"
  timeout 60 docker pull -q debian:bookworm >/dev/null 2>&1 || return 1
  docker build -q -t "$tag" "$recipe_dir" >/dev/null
}

build_with_debootstrap() {
  [ "$(id -u)" -eq 0 ] || die "no registry answers and debootstrap needs root: run as root or make debian:bookworm pullable"
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || die "apt-get install debootstrap failed"
  fi
  local mirror
  mirror=$(host_mirror)
  ROOTFS=$(mktemp -d "$STACKOPS_CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$ROOTFS"' EXIT
  local rootfs=$ROOTFS
  log "debootstrap bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase --include="$(paste -sd, "$recipe_dir/packages.txt")" \
    bookworm "$rootfs" "$mirror" >"$STACKOPS_STATE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$STACKOPS_STATE/debootstrap.log" >&2; die "debootstrap failed: see $STACKOPS_STATE/debootstrap.log"; }
  # Same trimming as the Dockerfile: no gettys or udev-only units in a container.
  rm -f "$rootfs"/lib/systemd/system/multi-user.target.wants/* "$rootfs"/etc/systemd/system/*.wants/getty* \
        "$rootfs"/lib/systemd/system/systemd-update-utmp* "$rootfs"/lib/systemd/system/sys-fs-fuse-connections.mount
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$rootfs/etc/apt/sources.list"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # An empty, old package list makes apt's cache_valid_time refresh it on first use.
  touch -d @0 "$rootfs/var/lib/apt/lists"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV container=docker' \
    --change 'CMD ["/lib/systemd/systemd"]' \
    - "$tag" >/dev/null
}

start=$(date +%s)
if build_from_registry; then
  log "built $tag from debian:bookworm"
else
  log "registry not reachable: building $tag offline"
  build_with_debootstrap
fi
echo "$tag" >"$STACKOPS_STATE/base-image"
log "base image $tag ready in $(( $(date +%s) - start )) s"
