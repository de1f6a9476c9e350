#!/usr/bin/env bash
# Build the sample app's release archive on the controller:
#   scripts/build-sample-release.sh [version]     (default: sample_app/VERSION)
# Writes build/releases/sample-app-<version>.tar.gz (one top directory sample-app-<version>/ holding
# app/, bin/ and VERSION; unpack with --strip-components=1) and <archive>.sha256, then prints the
# archive path and its sha256. Reproducible: sorted entries, fixed mtime/owner/mode, gzip without a
# timestamp, so the same source and version give the same sha256.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$REPO_ROOT/sample_app"
VERSION=${1:-$(tr -d '[:space:]' <"$SRC/VERSION")}
[[ "$VERSION" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || { echo "ERROR: bad version '$VERSION'" >&2; exit 2; }

OUT="$REPO_ROOT/build/releases"
NAME="sample-app-$VERSION"
ARCHIVE="$OUT/$NAME.tar.gz"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/sample-release.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

mkdir -p "$OUT" "$STAGE/$NAME/app" "$STAGE/$NAME/bin"
cp "$SRC"/app/*.py "$STAGE/$NAME/app/"
cp "$SRC"/bin/* "$STAGE/$NAME/bin/"
printf '%s\n' "$VERSION" >"$STAGE/$NAME/VERSION"
chmod -R u=rwX,go=rX "$STAGE/$NAME"
chmod 0755 "$STAGE/$NAME"/bin/*

# Written under a unique temporary name and renamed: concurrent builds never see a half-written archive.
TMP_ARCHIVE="$STAGE/$NAME.tar.gz"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
  -C "$STAGE" -cf - "$NAME" | gzip -n -9 >"$TMP_ARCHIVE"
cp "$TMP_ARCHIVE" "$OUT/.$NAME.tar.gz.$$"
mv -f "$OUT/.$NAME.tar.gz.$$" "$ARCHIVE"
SUM=$(sha256sum "$ARCHIVE" | cut -d' ' -f1)
printf '%s  %s\n' "$SUM" "$NAME.tar.gz" >"$ARCHIVE.sha256"
echo "$ARCHIVE"
echo "$SUM"
