/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "keyring.h"

#include <errno.h>
#include <linux/keyctl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The three system calls are a few lines: no libkeyutils. */
static long keyctl4(int cmd, unsigned long a2, unsigned long a3, unsigned long a4) {
        return syscall(SYS_keyctl, cmd, a2, a3, a4, 0UL);
}

static int32_t find(const char *name) {
        long k = keyctl4(KEYCTL_SEARCH, (unsigned long) KEY_SPEC_USER_KEYRING, (unsigned long) "user",
                         (unsigned long) name);
        return k < 0 ? -ENOKEY : (int32_t) k;
}

ssize_t cairn_keyring_get(const char *name, void *buf, size_t size) {
        int32_t key = find(name);
        long n;

        if (key < 0)
                return key;
        n = keyctl4(KEYCTL_READ, (unsigned long) key, (unsigned long) buf, size);
        if (n < 0)
                return -ENOKEY;
        if ((size_t) n > size)
                return -EMSGSIZE;
        return n;
}

int cairn_keyring_put(const char *name, const void *data, size_t len, unsigned seconds) {
        /* Possessor and the owning uid may read it, nobody else (the user
         * keyring is only searchable by its uid anyway). */
        const unsigned long perm = 0x2f000000 | 0x002f0000;  /* possessor, user: view read write search setattr */
        long key;

        if (seconds == 0)
                return -EINVAL;
        key = syscall(SYS_add_key, "user", name, data, len, KEY_SPEC_USER_KEYRING);
        if (key < 0)
                return -errno;
        if (keyctl4(KEYCTL_SETPERM, (unsigned long) key, perm, 0) < 0 ||
            keyctl4(KEYCTL_SET_TIMEOUT, (unsigned long) key, seconds, 0) < 0) {
                int e = -errno;
                (void) keyctl4(KEYCTL_INVALIDATE, (unsigned long) key, 0, 0);
                return e;
        }
        return 0;
}

int cairn_keyring_forget(const char *name) {
        int32_t key = find(name);
        if (key < 0)
                return key;
        /* Out of the keyring now; the kernel's collector frees it soon after. */
        (void) keyctl4(KEYCTL_UNLINK, (unsigned long) key, (unsigned long) KEY_SPEC_USER_KEYRING, 0);
        return keyctl4(KEYCTL_INVALIDATE, (unsigned long) key, 0, 0) < 0 ? -errno : 0;
}
