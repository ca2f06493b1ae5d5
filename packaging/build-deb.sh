#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build the Debian package: packaging/build-deb.sh [OUTDIR]  (default: ./build-deb)
#
# Debian wants debian/ at the top of the source tree; ours is
# packaging/debian/, so the tree (tracked files and new ones, not build
# directories) is copied to a temporary directory, packaging/debian is put
# there as debian/, "dpkg-buildpackage -us -uc -b" builds it, and the .deb
# (with its .buildinfo and .changes) is copied to OUTDIR.  Then lintian
# checks it, when installed: an error of lintian's fails this script.
#
# Needs dpkg-dev; run as root, it installs the Build-Depends it lacks.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-deb.XXXXXX")
[ -n "$tmp" ] && [ -d "$tmp" ] || { echo "build-deb: cannot create a temporary directory" >&2; exit 1; }
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/cairn

# The files of the tree: what git knows and what is new, without ignored
# build output; a tree without git: everything but build* and demo/.
mkdir -p "$tree"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
        # (a file deleted but not yet committed is left out)
        git -C "$src" ls-files -z --cached --others --exclude-standard |
                (cd "$src" && xargs -0 sh -c 'for f; do if [ -e "$f" ] || [ -L "$f" ]; then printf "%s\0" "$f"; fi; done' sh) |
                tar -C "$src" --null --no-recursion -T - -cf - | tar -C "$tree" -xf -
else
        tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=./demo -cf - . | tar -C "$tree" -xf -
fi
rm -rf "$tree/debian"
cp -a "$src/packaging/debian" "$tree/debian"

# The Build-Depends of debian/control (debhelper, meson, scdoc, the -dev
# packages): as root, apt-get installs what is missing.
if ! unmet=$(cd "$tree" && dpkg-checkbuilddeps 2>&1); then
        if [ "$(id -u)" != 0 ]; then
                echo "build-deb: $unmet (run as root to install them)" >&2
                exit 1
        fi
        echo "build-deb: installing the Build-Depends" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get build-dep -y -qq --no-install-recommends "$tree/" >/dev/null 2>&1 || {
                apt-get update -qq
                apt-get build-dep -y -qq --no-install-recommends "$tree/" >/dev/null
        }
fi

(cd "$tree" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1 || {
        tail -n 40 "$tmp/build.log" >&2
        echo "build-deb: dpkg-buildpackage failed (the last 40 lines are above)" >&2
        exit 1
}

n=0
for f in "$tmp"/*.deb "$tmp"/*.buildinfo "$tmp"/*.changes; do
        [ -e "$f" ] || continue
        cp "$f" "$out/"
        n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "build-deb: dpkg-buildpackage made no .deb" >&2; exit 1; }
for f in "$tmp"/*.deb; do
        echo "$out/$(basename "$f")"
done

status=0
if command -v lintian >/dev/null 2>&1; then
        root=
        [ "$(id -u)" != 0 ] || root=--allow-root
        for f in "$tmp"/*.changes; do
                # shellcheck disable=SC2086
                lintian --info $root "$out/$(basename "$f")" || status=1
        done
        [ "$status" -eq 0 ] || echo "build-deb: lintian found errors" >&2
else
        echo "build-deb: lintian is not installed: the package is not checked" >&2
fi
exit $status
