/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small store of short secrets in the kernel's per-user keyring
 * (keyrings(7)): memory only, gone at reboot, readable only by processes
 * of the same uid, each entry expiring after a timeout.  The repository
 * uses it to keep an unlocked master key — itself sealed under a key
 * derived from the passphrase — so that opening the same repository again
 * costs a keyring read and an HMAC instead of the scrypt KDF.
 *
 * Everything here is best effort: where the kernel or a seccomp filter
 * refuses keyrings (containers often do), get finds nothing and put does
 * nothing.
 */

#include <stddef.h>
#include <sys/types.h>

/* Copy the payload of the entry @name (at most @size bytes) into @buf.
 * Returns its length, or -ENOKEY when there is none (also when keyrings
 * are unavailable), -EMSGSIZE when it is longer than @size. */
ssize_t cairn_keyring_get(const char *name, void *buf, size_t size);

/* Create or replace the entry @name with @len bytes of @data, expiring
 * after @seconds (> 0).  Returns 0 or a negative errno; callers may ignore
 * it. */
int cairn_keyring_put(const char *name, const void *data, size_t len, unsigned seconds);

/* Remove the entry @name; 0 when it was there, -ENOKEY when not. */
int cairn_keyring_forget(const char *name);
