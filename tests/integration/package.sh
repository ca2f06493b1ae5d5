#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn as installed: every file that the documentation (README.md, the
# man pages, docs/MOUNT.md, the example configs, units and cron file)
# names is where it says; the man pages render and list what --help and
# the config parser know; the units pass systemd-analyze verify; and the
# installed programs run: --version, init, backup, cairn mount, and
# mount(8) with "-t cairnfs", "-t fuse.cairnfs" and an fstab line with
# noauto,x-systemd.automount, which find mount.cairnfs in /sbin and cairnfs
# in mount.fuse3's default PATH (/usr/bin).
#
# The installed tree is the Debian package's: packaging/build-deb.sh builds
# it (about 40 s; DEB_BUILD_OPTIONS=nocheck, the suite runs the unit tests
# itself) and it is unpacked with dpkg-deb -x.  CAIRN_DEB=FILE.deb checks a
# given package instead; CAIRN_PACKAGE_MESON=1 checks a meson install
# --destdir of the same layout (prefix /usr, sysconfdir /etc; a build of its
# own in build-pkgtest/, shared by the gcc and ASan suites under a lock).
#
# It runs in a mount namespace of its own, where read-only overlays put the
# installed /usr/bin and /usr/sbin over the system's: nothing outside it
# changes, and its mounts go with it.
set -u
if [ -z "${CAIRN_PACKAGE_NS:-}" ]; then
        CAIRN_PACKAGE_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
D=$T/root
VERSION=$(sed -n "s/^  version : '\(.*\)',$/\1/p" "$SRC/meson.build")
[ -n "$VERSION" ]; tap_ok $? "the project version is known from meson.build ($VERSION)"

# ---- the package: built here (unit tests skipped: the suite runs them) ----
if [ -z "${CAIRN_DEB:-}" ] && [ -z "${CAIRN_PACKAGE_MESON:-}" ]; then
        # The gcc and the ASan suite check the same package: it is built once
        # per state of the tree (commit and uncommitted changes), under a lock.
        key=$(cd "$SRC" && { git rev-parse HEAD; git status --porcelain; git diff; } 2>/dev/null | sha256sum | cut -c1-16)
        debdir=$SRC/build-pkgdeb/$key
        mkdir -p "$SRC/build-pkgdeb"
        exec 8>"$SRC/build-pkgdeb/.lock"
        flock 8
        t0=$(now_ms)
        if ls "$debdir"/cairn_*_*.deb >/dev/null 2>&1; then
                tap_ok 0 "the .deb of this tree was built by the other suite ($key)"
        else
                rm -rf "$SRC/build-pkgdeb"/[0-9a-f]*
                out=$(DEB_BUILD_OPTIONS=nocheck "$SRC/packaging/build-deb.sh" "$debdir.tmp" 2>&1); st=$?
                [ "$st" -eq 0 ] && mv "$debdir.tmp" "$debdir"
                test "$st" -eq 0; tap_ok $? "packaging/build-deb.sh builds the .deb, lintian finds no error (exit $st, $(( $(now_ms) - t0 )) ms)"
                [ "$st" -eq 0 ] || printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'
        fi
        flock -u 8
        CAIRN_DEB=$(ls "$debdir"/cairn_*_*.deb 2>/dev/null | head -n 1)
        test -f "$CAIRN_DEB"; tap_ok $? "the package file is there ($(basename "${CAIRN_DEB:-none}"))"
fi

# ---- the installed tree ----
if [ -n "${CAIRN_DEB:-}" ]; then
        expect 0 "dpkg-deb -x $CAIRN_DEB" -- dpkg-deb -x "$CAIRN_DEB" "$D"
        deps=$(dpkg-deb -f "$CAIRN_DEB" Depends)
        contains "fuse3" "$deps" "the package depends on fuse3 (Depends: $deps)"
        contains "libfuse3" "$deps" "and, from shlibs, on libfuse3"
        contains "$VERSION" "$(dpkg-deb -f "$CAIRN_DEB" Version)" "its version is the project's"
else
        B=${CAIRN_PACKAGE_BUILD:-$SRC/build-pkgtest}
        t0=$(now_ms)
        # One build at a time: the lock is on the source directory itself.
        exec 9<"$SRC"
        flock 9
        if [ ! -f "$B/build.ninja" ]; then
                rm -rf "$B"
                run_files meson setup "$B" "$SRC" --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
                        --buildtype=debugoptimized
                test "$st" -eq 0; tap_ok $? "meson setup --prefix=/usr (exit $st)"
                [ "$st" -eq 0 ] || printf '%s\n' "$out" "$err" | tail -n 20 | sed 's/^/#   /'
        fi
        # Only what is installed: the unit tests and benchmarks are not.
        targets=$(meson introspect "$B" --targets | python3 -c '
import json, os, sys
b = sys.argv[1]
for t in json.load(sys.stdin):
    if t.get("installed"):
        for f in t["filename"]:
            print(os.path.relpath(f, b))' "$B")
        # shellcheck disable=SC2086
        run_files ninja -C "$B" $targets
        test "$st" -eq 0; tap_ok $? "ninja builds the installed targets (exit $st)"
        [ "$st" -eq 0 ] || printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'
        run_files meson install -C "$B" --no-rebuild --destdir "$D"
        test "$st" -eq 0; tap_ok $? "meson install --destdir (exit $st)"
        [ "$st" -eq 0 ] || printf '%s\n' "$err" | tail -n 20 | sed 's/^/#   /'
        flock -u 9
        exec 9>&-
        echo "# built and installed in $(( $(now_ms) - t0 )) ms"
fi
if [ ! -x "$D/usr/bin/cairn" ]; then
        tap_ok 1 "$D/usr/bin/cairn is installed"
        echo "Bail out! nothing installed to check"
        exit 1
fi

# in_root PATH: PATH as it resolves inside $D (symlinks followed there).
in_root() {
        local p=$1 t n=0
        # merged /usr: /sbin is /usr/sbin
        case $p in /sbin/*) p=/usr$p ;; esac
        while [ -L "$D$p" ] && [ $n -lt 20 ]; do
                t=$(readlink "$D$p")
                case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
                n=$((n + 1))
        done
        realpath -m "$D$p"
}
# installed PATH [DESC]: PATH is there (a man page may be compressed).
installed() {
        if [ -e "$(in_root "$1")" ] || [ -e "$(in_root "$1.gz")" ]; then
                tap_ok 0 "installed: ${2:-$1}"
        else
                tap_ok 1 "installed: ${2:-$1}"
                echo "#   not found below $D"
        fi
}

for p in /usr/bin/cairn /usr/bin/cairnfs; do
        file -L "$D$p" | grep -q 'ELF.*executable'; tap_ok $? "$p is an executable"
done
test -L "$D/usr/sbin/mount.cairnfs"; tap_ok $? "/usr/sbin/mount.cairnfs is a symlink"
test "$(in_root /usr/sbin/mount.cairnfs)" = "$(realpath "$D/usr/bin/cairnfs")"
tap_ok $? "/usr/sbin/mount.cairnfs -> /usr/bin/cairnfs ($(readlink "$D/usr/sbin/mount.cairnfs"))"
test "$(readlink -f /sbin)" = /usr/sbin; tap_ok $? "/sbin, where mount(8) looks for helpers, is /usr/sbin (merged /usr)"
test ! -e "$D/etc/cairn/cairn.conf"; tap_ok $? "no /etc/cairn/cairn.conf is installed (a real config is never overwritten)"

# Every absolute path of an installed file the documentation names, and
# every man page, unit and example it mentions.  Paths that are the
# operator's own (the config, the passphrase, a drill script copied to
# /etc) are not installed and are listed here.
operators_own='^(/etc/cairn/cairn\.conf|/etc/cairn/passphrase|/etc/cairn/database\.conf|/etc/cairn/drills(/pgdb\.sh)?|/usr/lib/postgresql(/.*)?|/usr/local/.*)$'
docs=("$SRC/README.md" "$SRC/docs/MOUNT.md" "$SRC"/man/*.scd "$SRC"/packaging/*.example
      "$SRC"/packaging/systemd/* "$SRC/packaging/cron/cairn" "$SRC/packaging/drills/pgdb.sh")
n_paths=0
while read -r p; do
        [[ $p =~ $operators_own ]] && continue
        n_paths=$((n_paths + 1))
        installed "$p" "$p (named in the documentation)"
# (scdoc underlines a path as _/usr/..._: the underscores are not part of it)
done < <(grep -ohE '(^|[^A-Za-z0-9.~-])(/usr/(share|bin|sbin|lib)|/sbin|/lib/systemd|/etc/cairn)/[A-Za-z0-9._@/-]*[A-Za-z0-9_@/]' "${docs[@]}" |
         sed -E 's/^[^/]//; s#[_/]+$##' | sort -u)
test "$n_paths" -ge 6; tap_ok $? "the documentation names installed paths ($n_paths of them)"
unitdir=/lib/systemd/system
while read -r u; do
        installed "$unitdir/${u/@*./@.}" "unit $u (named in the documentation)"
done < <(grep -ohE 'cairn-(run|drill|status)(@[A-Za-z_]*)?\.(service|timer)' "${docs[@]}" | sort -u)
for u in restore.mount restore.automount; do
        installed /usr/share/doc/cairn/examples/systemd/$u "example unit $u"
done
while read -r m; do
        name=${m%(*}; sec=${m#*(}; sec=${sec%)}
        installed "/usr/share/man/man$sec/$name.$sec" "man page $m (named in the documentation)"
done < <(grep -ohE '\b(cairn|cairnfs|cairn\.conf|mount\.cairnfs)\*?\([158]\)' "${docs[@]}" | tr -d '*' | sort -u)
installed /usr/share/man/man8/mount.cairnfs.8 "man page mount.cairnfs(8)"
grep -q '@[A-Z]*@' "$D$unitdir"/cairn-*; test $? -eq 1; tap_ok $? "the units have no @PLACEHOLDER@ left"
grep -q '^ExecStart=/usr/bin/cairn ' "$D$unitdir/cairn-status.service"; tap_ok $? "units run /usr/bin/cairn"

# ---- man pages ----
# As plain ASCII text on lines too long to wrap: a word is never split.
man_text() { zcat -f "$1" | groff -man -Tascii -rLL=5000n -rHY=0 -P-cbou 2>/dev/null; }
for m in man1/cairn.1 man8/cairnfs.8 man5/cairn.conf.5 man8/mount.cairnfs.8; do
        f=$(in_root "/usr/share/man/$m"); [ -e "$f" ] || f=$(in_root "/usr/share/man/$m.gz")
        warn=$(zcat -f "$f" | groff -man -Tutf8 -ww -z 2>&1)
        test -z "$warn"; tap_ok $? "$m: groff -man -Tutf8 -ww renders it without a warning"
        [ -z "$warn" ] || printf '%s\n' "$warn" | head -n 5 | sed 's/^/#   /'
        text=$(LC_ALL=C.UTF-8 MANWIDTH=100 man -l -P cat "$f" 2>"$T/man.err")
        contains "NAME" "$text" "$m: man -l renders it"
        test ! -s "$T/man.err"; tap_ok $? "$m: man -l says nothing on stderr"
        [ ! -s "$T/man.err" ] || head -n 5 "$T/man.err" | sed 's/^/#   /'
done
f=$(in_root /usr/share/man/man1/cairn.1); [ -e "$f" ] || f=$f.gz
cairn1=$(man_text "$f")
f=$(in_root /usr/share/man/man8/cairnfs.8); [ -e "$f" ] || f=$f.gz
cairnfs8=$(man_text "$f")
f=$(in_root /usr/share/man/man5/cairn.conf.5); [ -e "$f" ] || f=$f.gz
conf5=$(man_text "$f")
contains "cairn $VERSION" "$cairn1" "cairn(1) carries the version"

# Every command and option of the --help texts is in the man page (a
# command and a cairnfs option as a heading of its own); every key the
# config parser knows (backupd/conf.c) is described in cairn.conf(5).
CAIRN_I=$D/usr/bin/cairn
CAIRNFS_I=$D/usr/bin/cairnfs
help=$("$CAIRN_I" --help)
missing=
for c in $(printf '%s\n' "$help" | sed -n '/^Commands:/,/^$/s/^  \([a-z]\{2,\}\) .*/\1/p' | sort -u); do
        grep -qE "^ +$c( |$)" <<<"$cairn1" || missing="$missing $c"
done
test -z "$missing"; tap_ok $? "cairn(1) describes every command of cairn --help${missing:+ (missing:$missing)}"
opts=$(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z-]+' | sort -u)
for c in init info backup run snapshots ls restore import export forget prune check index mount status verify sync; do
        opts="$opts $("$CAIRN_I" "$c" --help | grep -oE -- '(^|[ [|])--[a-z][a-z-]+' | grep -oE -- '--[a-z-]+')"
done
missing=
n_opts=0
for o in $(printf '%s\n' $opts | sort -u); do
        n_opts=$((n_opts + 1))
        grep -qE -- "(^|[^a-z-])$o([^a-z-]|$)" <<<"$cairn1" || missing="$missing $o"
done
test -z "$missing" && test "$n_opts" -ge 30
tap_ok $? "cairn(1) names every option of the $n_opts in the --help texts${missing:+ (missing:$missing)}"
fshelp=$("$CAIRNFS_I" --help)
missing=
for o in $(printf '%s\n' "$fshelp" | grep -oE '^ {1,8}(-[a-zA-Z]|[a-z_]+=[A-Z]+|[a-z_]{4,})[ ,]' | tr -d ' ,' | sed 's/=.*/=/'); do
        grep -qE -- "^ +$o" <<<"$cairnfs8" || missing="$missing $o"
done
test -z "$missing"; tap_ok $? "cairnfs(8) names every option of cairnfs --help${missing:+ (missing:$missing)}"
keys=$(sed -n 's/^ *\[KEY_[A-Z_]*\] *= { "\([a-z-]*\)",.*/\1/p' "$SRC/backupd/conf.c" | sort -u)
# Described: a "KEY = VALUE" heading above the EXAMPLE section, not only used in it.
described=$(sed '/^EXAMPLE/,$d' <<<"$conf5")
missing=
for k in $keys; do
        grep -qE -- "^ +([a-z-]+, )*$k(, [a-z-]+)* = " <<<"$described" || missing="$missing $k"
done
test -z "$missing" && test "$(wc -w <<<"$keys")" -ge 20
tap_ok $? "cairn.conf(5) describes every key of backupd/conf.c ($(wc -w <<<"$keys"))${missing:+ (missing:$missing)}"

# ---- the example config parses; cron lines run real commands ----
# A config error names the file and line; the example's repository does not
# exist here, so the command fails after the parse.
expect 1 "cairn -c /etc/cairn/cairn.conf.example snapshots gets past the config" -- \
        "$CAIRN_I" -c "$D/etc/cairn/cairn.conf.example" snapshots
case $err in *cairn.conf.example:[0-9]*) tap_ok 1 "the installed example config parses";; *) tap_ok 0 "the installed example config parses";; esac
printf '[repository]\npath = /x\nnot-a-key = 1\n' > "$T/bad.conf"
expect 1 "(a bad config, for contrast, fails)" -- "$CAIRN_I" -c "$T/bad.conf" snapshots
contains "bad.conf:3" "$err" "(naming its file and line)"
cron=$D/usr/share/doc/cairn/examples/cron.d/cairn
bad=$(grep -vE '^(#|$|[A-Z]+=)' "$cron" | awk -F'\t' 'NF != 3 || $2 != "root" || $3 !~ /^cairn / { print }')
test -z "$bad"; tap_ok $? "the cron file's lines are m-h-dom-mon-dow, root, a cairn command${bad:+ (not: $bad)}"
while read -r sub; do
        "$CAIRN_I" $sub --help >/dev/null 2>&1; tap_ok $? "cron runs \"cairn $sub\", a command that exists"
done < <(grep -ohE '(^|[;&|] *|	)cairn [a-z]+' "$cron" | sed -E 's/.*cairn //' | sort -u)

# ---- the installed programs ----
printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
S=$T/src
mkdir -p "$S"
printf 'hello\n' > "$S/hello.txt"
chmod 644 "$S/hello.txt"
R=$T/repo
expect 0 "installed cairn --version" -- "$CAIRN_I" --version
test "$out" = "cairn $VERSION"; tap_ok $? "prints \"cairn $VERSION\" ($out)"
expect 0 "installed cairnfs --version" -- "$CAIRNFS_I" --version
contains "$VERSION" "$out" "prints the version"
expect 0 "installed cairn init" -- "$CAIRN_I" -r "$R" --password-file "$T/pw" init --scrypt-n 1024
expect 0 "installed cairn backup" -- "$CAIRN_I" -r "$R" --password-file "$T/pw" backup --job app "$S"
expect 0 "installed cairn ls" -- "$CAIRN_I" -r "$R" --password-file "$T/pw" ls "app:$S"
contains "hello.txt" "$out" "lists the file backed up"

M=$T/mnt
mkdir -p "$M"
mnt_list+=("$M")
reads() { test "$(cat "$M/app/latest$S/hello.txt" 2>&1)" = hello; }
unmounted() { ! is_mounted "$M"; }
fstype() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo; }
mntopts() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $6 "," $(i + 3) }' /proc/self/mountinfo; }
# daemon_exe MNT: the programs of the processes with MNT as an argument:
# the daemon serving it.
daemon_exe() {
        local p e list=
        for p in /proc/[0-9]*; do
                [ "${p#/proc/}" = "$BASHPID" ] && continue
                tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -qxF "$1" || continue
                e=$(readlink "$p/exe" 2>/dev/null) || continue
                list="$list${list:+ }$e"
        done
        printf '%s\n' "$list"
}

expect_files 0 "installed cairn mount MNT (it runs the cairnfs beside it)" -- \
        env -u CAIRNFS "$CAIRN_I" -r "$R" --password-file "$T/pw" mount "$M"
reads; tap_ok $? "reads through the mount"
test "$(daemon_exe "$M")" = "$(realpath "$D/usr/bin/cairnfs")"; tap_ok $? "served by the installed cairnfs ($(daemon_exe "$M"))"
expect 0 "fusermount3 -u MNT" -- fusermount3 -u "$M"
wait_for "the mount is gone" 30 unmounted

# ---- mount(8), with the installed files where the package puts them ----
mkdir -p "$T/ovl"
drop_overlays() { umount /usr/sbin 2>/dev/null; umount /usr/bin 2>/dev/null; return 0; }
extra_cleanup=drop_overlays
mount -t overlay cairn-pkg-bin -o "lowerdir=$D/usr/bin:/usr/bin" /usr/bin &&
        mount -t overlay cairn-pkg-sbin -o "lowerdir=$D/usr/sbin:/usr/sbin" /usr/sbin
tap_ok $? "(in this test's mount namespace) the installed /usr/bin and /usr/sbin overlay the system's"
test "$(readlink -f /sbin/mount.cairnfs)" = /usr/bin/cairnfs && cmp -s /usr/bin/cairnfs "$D/usr/bin/cairnfs"
tap_ok $? "/sbin/mount.cairnfs is the installed one and leads to /usr/bin/cairnfs"
# mount.fuse3 runs "cairnfs" through /bin/sh with no PATH of mount's: the
# shell's default one.  The installed cairnfs must be the first there.
first=$(env -i /bin/sh -c 'command -v cairnfs')
test "$first" = /usr/bin/cairnfs; tap_ok $? "cairnfs is found first in the default PATH at /usr/bin ($first)"

expect_files 0 "mount -t cairnfs REPO MNT -o password_file=… (mount.cairnfs from /sbin)" -- \
        mount -t cairnfs "$R" "$M" -o password_file="$T/pw"
reads; tap_ok $? "reads"
test "$(fstype "$M")" = fuse.cairnfs; tap_ok $? "its type is fuse.cairnfs ($(fstype "$M"))"
test "$(daemon_exe "$M")" = /usr/bin/cairnfs; tap_ok $? "served by /usr/bin/cairnfs ($(daemon_exe "$M"))"
expect 0 "umount MNT" -- umount "$M"
wait_for "the mount is gone" 30 unmounted

expect_files 0 "mount -t fuse.cairnfs REPO MNT -o ro,password_file=… (via mount.fuse3)" -- \
        mount -t fuse.cairnfs "$R" "$M" -o ro,password_file="$T/pw"
reads; tap_ok $? "reads"
test "$(daemon_exe "$M")" = /usr/bin/cairnfs; tap_ok $? "served by /usr/bin/cairnfs ($(daemon_exe "$M"))"
expect 0 "umount MNT" -- umount "$M"
wait_for "the mount is gone" 30 unmounted

cat > "$T/fstab" <<FSTAB
# the README's fstab line, mounted on first access by systemd
$R $M fuse.cairnfs ro,allow_other,password_file=$T/pw,noauto,x-systemd.automount 0 0
FSTAB
expect_files 0 "mount -T FSTAB MNT, a line with noauto,x-systemd.automount" -- mount -T "$T/fstab" "$M"
reads; tap_ok $? "reads"
test "$(fstype "$M")" = fuse.cairnfs; tap_ok $? "as fuse.cairnfs"
case ",$(mntopts "$M")," in *,ro,*) tap_ok 0 "read-only";; *) tap_ok 1 "read-only ($(mntopts "$M"))";; esac
case ",$(mntopts "$M")," in *,allow_other,*) tap_ok 0 "with allow_other";; *) tap_ok 1 "with allow_other ($(mntopts "$M"))";; esac
test "$(daemon_exe "$M")" = /usr/bin/cairnfs; tap_ok $? "served by /usr/bin/cairnfs ($(daemon_exe "$M"))"
expect 0 "umount MNT" -- umount "$M"
wait_for "the mount is gone" 30 unmounted
printf '%s %s fuse.cairnfs ro,password_file=%s,x-bogus,frobnicate 0 0\n' "$R" "$M" "$T/pw" > "$T/fstab.bad"
run_files mount -T "$T/fstab.bad" "$M"
test "$st" -ne 0; tap_ok $? "(for contrast) an fstab line with an unknown option fails (exit $st)"
contains "frobnicate" "$err" "naming it"
! is_mounted "$M"; tap_ok $? "and mounts nothing"

# ---- the units, as systemd would load them ----
if command -v systemd-analyze >/dev/null 2>&1; then
        U=$T/units
        mkdir -p "$U"
        cp "$D$unitdir"/cairn-* "$D"/usr/share/doc/cairn/examples/systemd/* "$U/"
        # A template is verified as an instance.
        cp "$U/cairn-drill@.service" "$U/cairn-drill@pgdb.service"
        cp "$U/cairn-drill@.timer" "$U/cairn-drill@pgdb.timer"
        for u in cairn-run.service cairn-run.timer cairn-status.service cairn-status.timer \
                 cairn-drill.service cairn-drill.timer cairn-drill@pgdb.service cairn-drill@pgdb.timer restore.mount restore.automount; do
                out=$(cd "$U" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$U/$u" 2>&1)
                st=$?
                test "$st" -eq 0 && ! grep -q "$u" <<<"$out"
                tap_ok $? "systemd-analyze verify $u (exit $st)"
                [ -z "$out" ] || printf '%s\n' "$out" | head -n 5 | sed 's/^/#   /'
        done
        # (for contrast) a misspelt key and a missing program are reported
        sed 's/^Nice=19$/Nicee=19/; s#/usr/bin/cairn#/nonexistent/cairn#g' "$U/cairn-drill@pgdb.service" > "$U/cairn-bad.service"
        out=$(cd "$U" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$U/cairn-bad.service" 2>&1)
        grep -q "cairn-bad.service:.*Nicee" <<<"$out" && grep -q "/nonexistent/cairn" <<<"$out"
        tap_ok $? "(for contrast) systemd-analyze verify reports a misspelt key and a missing program"
else
        echo "ok $((tap_n + 1)) # SKIP systemd-analyze is not installed: the units are not verified"
        tap_n=$((tap_n + 1))
fi

tap_finish
