#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Count every TAP check of meson test logs; print 'N passed, N failed[, N skipped]'.

A test executable that crashed or exited non-zero without a failing TAP line
still counts as one failure, so nothing can pass by dying early."""
import json
import re
import sys

TAP = re.compile(r'^(not ok|ok)\b[^#]*(#\s*(SKIP|TODO)\b.*)?', re.I)

passed = failed = skipped = 0
for log in sys.argv[1:]:
    label = log.split('/')[0]
    with open(log) as f:
        for line in f:
            t = json.loads(line)
            p = f = s = 0
            for out in (t.get('stdout') or '').splitlines():
                m = TAP.match(out)
                if not m:
                    continue
                if m.group(3) and m.group(3).upper() == 'SKIP':
                    s += 1
                    print(f'skipped: {label} {t["name"]}: {out}')
                elif m.group(1) == 'ok':
                    p += 1
                else:
                    f += 1
            if t.get('result') not in ('OK', 'SKIP', 'EXPECTEDFAIL') and f == 0:
                f += 1
                print(f'failed: {label} {t["name"]}: {t.get("result")} (exit without a failing check)')
            elif f:
                print(f'failed: {label} {t["name"]}: {f} check(s)')
            passed += p
            failed += f
            skipped += s

summary = f'{passed} passed, {failed} failed'
if skipped:
    summary += f', {skipped} skipped'
print(summary)
sys.exit(1 if failed else 0)
