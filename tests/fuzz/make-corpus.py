#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Text and archive seeds of the fuzz targets (the binary formats come
from make-corpus.c, which uses the real code):

    tests/fuzz/make-corpus.py tests/fuzz/corpus

config/ini-*   operator config files (fuzz-config mode 0)
tar/*          archives for fuzz-tar: tar (ustar, pax, GNU), gzip'ed tar,
               zip, cpio, hostile entries; the first byte is the mode
               (bit 0: read from a pipe, bit 1: below a directory)

Deterministic: the same files every time (fixed mtimes, no randomness),
so regenerating shows only real changes.  GNU tar, when present, adds a
sparse archive."""
import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

out = sys.argv[1]


def put(d, name, mode, data):
    os.makedirs(os.path.join(out, d), exist_ok=True)
    with open(os.path.join(out, d, name), 'wb') as f:
        f.write(bytes([mode]) + data)


# ---- configs ----
INI_FULL = b"""# cairn.conf
[repository]
path = /backups/repo
password-file = /etc/cairn/passphrase
compression = 3
encryption = yes

[job pgdb]
command = docker exec ml_postgres pg_dumpall -U postgres
filename = pgdump.sql
keep-daily = 3 ; three days
keep-weekly = 2
keep-monthly = 2
max-age = 26h
drill = /etc/cairn/drills/pgdb.sh
drill-runtime = podman
drill-image = postgres:15
drill-user = postgres

[job volumes]
path = /var/lib/docker/volumes/grafana
path = /srv/compose/
exclude = *.tmp
one-file-system = yes
keep-last = 7

[job qdrant]
tar-command = docker run --rm -v qdrant:/data busybox tar c -C /data .
directory = qdrant/storage
keep-hourly = 24

[status]
textfile = /var/lib/node_exporter/textfile/cairn.prom
webhook = https://hooks.example.com/cairn
"""
INI_MIN = b"[repository]\npath = /r\n\n[job a]\npath = /srv\n"
INI_BAD = (b"\xef\xbb\xbf[repository]\npath = relative\npath = /twice\nbogus = 1\n"
           b"  indented = x\n[job pgdb]\nkeep-last = -1\nkeep-daily = lots\n"
           b"command = a ; b\n[job pgdb]\n[job ../x]\n[nonsense]\nno equals here\n"
           b"k: v\n[status]\ntextfile = /x.txt\nwebhook = ftp://x\n")
put('config', 'ini-full', 0, INI_FULL)
put('config', 'ini-minimal', 0, INI_MIN)
put('config', 'ini-errors', 0, INI_BAD)
put('config', 'ini-long-line', 0, b"[repository]\npath = /" + b"a" * 250 + b"\n")
put('config', 'ini-password-command', 0,
    b"[repository]\npath = /r\npassword-command = cat /etc/pw\nencryption = no\n"
    b"[job t]\ntar-command = tar c .\n")

# ---- archives ----
MTIME = 1700000000


def tar_bytes(fmt, build, compress=None):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=fmt) as t:
        build(t)
    data = bio.getvalue()
    if compress == 'gz':
        data = gzip.compress(data, mtime=0)
    return data


def add_file(t, name, data=b'x', mode=0o644, **kw):
    i = tarfile.TarInfo(name)
    i.size = len(data)
    i.mtime = MTIME
    i.mode = mode
    for k, v in kw.items():
        setattr(i, k, v)
    t.addfile(i, io.BytesIO(data))


def add_entry(t, name, kind, linkname='', mode=0o755, **kw):
    i = tarfile.TarInfo(name)
    i.type = kind
    i.linkname = linkname
    i.mtime = MTIME
    i.mode = mode
    for k, v in kw.items():
        setattr(i, k, v)
    t.addfile(i)


def tree(t):
    add_entry(t, './', tarfile.DIRTYPE)
    add_entry(t, 'dir', tarfile.DIRTYPE)
    add_file(t, 'dir/hello.txt', b'hello\n' * 20)
    add_entry(t, 'dir/link', tarfile.SYMTYPE, 'hello.txt', 0o777)
    add_entry(t, 'dir/hard', tarfile.LNKTYPE, 'dir/hello.txt')
    add_entry(t, 'fifo', tarfile.FIFOTYPE, mode=0o644)
    add_entry(t, 'null', tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)


def pax_rich(t):
    add_entry(t, 'srv', tarfile.DIRTYPE, pax_headers={'mtime': '1700000000.123456789'})
    add_file(t, 'srv/x', b'data' * 50, uid=4000000000, gid=70000, uname='someone', gname='group',
             pax_headers={'SCHILY.xattr.user.origin': 'from-the-test',
                          'SCHILY.acl.access': 'user::rw-,user:1000:r--,group::r--,mask::r--,other::r--',
                          'atime': '1700000001.5', 'ctime': '1700000002.25'})
    add_file(t, 'srv/' + 'n' * 200 + '/' + 'm' * 200, b'long')
    add_file(t, 'srv/\u00e9t\u00e9', b'utf8')
    add_file(t, 'srv/hl-with-data', b'abc')
    add_entry(t, 'srv/hl2', tarfile.LNKTYPE, 'srv/hl-with-data')


def gnu_long(t):
    add_file(t, 'a/' + 'b' * 150 + '/c', b'gnu long name')
    add_entry(t, 'a/l', tarfile.SYMTYPE, 'x' * 300)


def hostile(t):
    add_file(t, 'ok.txt', b'fine\n')
    add_file(t, '../evil', b'evil\n')
    add_file(t, '/abs/evil', b'abs\n')
    add_file(t, 'a/../../evil3', b'evil\n')
    add_entry(t, 'link', tarfile.SYMTYPE, '/tmp')
    add_file(t, 'link/pwned', b'pwned\n')
    add_entry(t, 'hl', tarfile.LNKTYPE, '../evil')
    add_entry(t, 'hl2', tarfile.LNKTYPE, 'nonexistent')
    add_file(t, 'd', b'file first')
    add_entry(t, 'd', tarfile.DIRTYPE)
    add_file(t, 'd/x', b'under what was a file')
    add_file(t, 'x' * 256, b'component too long')
    add_entry(t, 'empty-link', tarfile.SYMTYPE, '')


def deep(t):
    # 1024 names (the most the tar source stores) and 1025 (refused)
    add_file(t, '/'.join(['d'] * 1023) + '/ok', b'deep')
    add_file(t, '/'.join(['e'] * 1024) + '/too-deep', b'deeper')


ustar_tree = tar_bytes(tarfile.USTAR_FORMAT, tree)
put('tar', 'deep-pax', 0, tar_bytes(tarfile.PAX_FORMAT, deep))
put('tar', 'ustar-tree', 0, ustar_tree)
put('tar', 'ustar-tree-pipe-dir', 3, ustar_tree)
put('tar', 'pax-rich', 0, tar_bytes(tarfile.PAX_FORMAT, pax_rich))
put('tar', 'pax-rich-dir', 2, tar_bytes(tarfile.PAX_FORMAT, pax_rich))
put('tar', 'gnu-long', 1, tar_bytes(tarfile.GNU_FORMAT, gnu_long))
put('tar', 'hostile-pax', 0, tar_bytes(tarfile.PAX_FORMAT, hostile))
put('tar', 'tree-gz', 0, tar_bytes(tarfile.PAX_FORMAT, tree, 'gz'))
put('tar', 'tree-gz-pipe', 1, tar_bytes(tarfile.PAX_FORMAT, tree, 'gz'))
put('tar', 'empty-archive', 0, b'\0' * 1024)
put('tar', 'empty-file', 0, b'')

# zip (seekable and on a pipe: spooled), with a symlink by external_attr
bio = io.BytesIO()
with zipfile.ZipFile(bio, 'w', zipfile.ZIP_DEFLATED) as z:
    zi = zipfile.ZipInfo('dir/', date_time=(2023, 11, 14, 22, 13, 20))
    zi.external_attr = (0o40755 << 16) | 0x10
    z.writestr(zi, b'')
    zi = zipfile.ZipInfo('dir/a.txt', date_time=(2023, 11, 14, 22, 13, 20))
    zi.external_attr = 0o100644 << 16
    z.writestr(zi, b'zip content ' * 30)
    zi = zipfile.ZipInfo('dir/link', date_time=(2023, 11, 14, 22, 13, 20))
    zi.external_attr = 0o120777 << 16
    z.writestr(zi, b'a.txt')
    zi = zipfile.ZipInfo('../zip-evil', date_time=(2023, 11, 14, 22, 13, 20))
    z.writestr(zi, b'evil')
put('tar', 'zip', 0, bio.getvalue())
put('tar', 'zip-pipe', 1, bio.getvalue())


# cpio newc, written by hand (no cpio tool needed)
def newc(entries):
    o = b''
    ino = 1
    for name, mode, data in entries + [('TRAILER!!!', 0, b'')]:
        nb = name.encode() + b'\0'
        hdr = b'070701' + b''.join(b'%08X' % v for v in (
            ino, mode, 0, 0, 1, MTIME, len(data), 0, 0, 0, 0, len(nb), 0))
        o += hdr + nb
        o += b'\0' * ((4 - len(o) % 4) % 4)
        o += data
        o += b'\0' * ((4 - len(o) % 4) % 4)
        ino += 1
    return o


put('tar', 'cpio-newc', 0, newc([('d', 0o40755, b''), ('d/f', 0o100644, b'cpio data\n'),
                                  ('d/l', 0o120777, b'f'), ('../cpio-evil', 0o100644, b'x')]))

# GNU tar's sparse formats, when GNU tar is here
gnutar = shutil.which('tar')
if gnutar and b'GNU tar' in subprocess.run([gnutar, '--version'], capture_output=True).stdout:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, 'sparse.img')
        with open(p, 'wb') as f:
            f.truncate(1 << 20)
            f.seek(0)
            f.write(b'start')
            f.seek(512 * 1024)
            f.write(b'middle')
        os.utime(p, (MTIME, MTIME))
        for fmt in ('pax', 'gnu'):
            tf = os.path.join(d, fmt + '.tar')
            pax = ['--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime'] if fmt == 'pax' else []
            subprocess.run([gnutar, '--sparse', '--format=' + fmt, '--numeric-owner', '--owner=0',
                            '--group=0', '--mtime=@%d' % MTIME] + pax + ['-C', d, '-cf', tf, 'sparse.img'],
                           check=True)
            with open(tf, 'rb') as f:
                put('tar', 'sparse-' + fmt, 0, f.read())
