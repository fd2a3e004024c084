/* NKeys: the ed25519 identities NATS authenticates users with (the server
 * sends a nonce, the client signs it with its seed, the server checks the
 * signature against the public key in its config).
 *
 * Only user keys. A key is text: base32 (RFC 4648 alphabet, no padding) of
 * a prefix, the 32 raw key bytes and a CRC-16/XMODEM of both (little
 * endian), per github.com/nats-io/nkeys:
 *   public key  "U..." 56 characters   [20<<3][public key][crc]
 *   seed        "SU..." 58 characters  [18<<3 | 20>>5][(20&31)<<3][seed][crc]
 * The seed is the private half: whoever holds it is that user. It lives in
 * a credential file of mode 0600 and in memory only as long as needed;
 * buffers that held one are wiped with cl_nkey_wipe.
 *
 * No cnats here (its base32 and CRC are not public API): OpenSSL does the
 * ed25519 arithmetic, this file only the encoding. */
#ifndef CL_NKEY_H
#define CL_NKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "cl_status.h"

#define CL_NKEY_SEED_LEN 58
#define CL_NKEY_PUBLIC_LEN 56
#define CL_NKEY_RAW_LEN 32 /* an ed25519 public key or seed */

/* A new user key pair from the system's random source. */
cl_status cl_nkey_user_new(char seed[CL_NKEY_SEED_LEN + 1], char pub[CL_NKEY_PUBLIC_LEN + 1],
                           cl_err *err) CL_MUST_USE;
/* The public key of a user seed. Checks the seed first (length, alphabet,
 * the "SU" prefix, the checksum) and says what is wrong: CL_ERR_INVALID. */
cl_status cl_nkey_public_from_seed(const char *seed, char pub[CL_NKEY_PUBLIC_LEN + 1],
                                   cl_err *err) CL_MUST_USE;
/* True for a well-formed user public key (length, alphabet, 'U', checksum).
 * NULL is not one. */
bool cl_nkey_public_valid(const char *pub);
/* The 32 raw ed25519 bytes of a user public key (to verify signatures
 * with). CL_ERR_INVALID, saying what is wrong, when pub is not one. */
cl_status cl_nkey_public_raw(const char *pub, unsigned char out[CL_NKEY_RAW_LEN], cl_err *err)
    CL_MUST_USE;

/* Credential files: what `clipper` writes for a role, one per identity:
 *
 *   # Clipper credential: role <role>, cluster prefix <prefix>
 *   SU...
 *
 * Readers take the first line that starts with "SU" (after blanks);
 * '#' comments, blank and other lines are skipped (cnats'
 * natsOptions_SetNKeyFromSeed reads such a file the same way). */

/* Writes seed (checked first) under "# <comment>" (NULL: no comment line;
 * one line, no newline in it) to path, mode 0600 whatever the umask. The
 * file appears complete or not at all (written aside, then linked into
 * place), and an existing path is never replaced: CL_ERR_EXISTS, since
 * that would silently change an identity. */
cl_status cl_nkey_write_file(const char *path, const char *seed, const char *comment,
                             cl_err *err) CL_MUST_USE;
/* Reads the seed of a credential file and checks it. Refuses a file that
 * group or others may read or write (CL_ERR_DENIED: "... is readable by
 * others (mode 0644); chmod 600 it"), a missing one (CL_ERR_NOT_FOUND) and
 * one without a valid user seed (CL_ERR_INVALID); every message names the
 * file. On failure seed is left empty. */
cl_status cl_nkey_read_file(const char *path, char seed[CL_NKEY_SEED_LEN + 1], cl_err *err)
    CL_MUST_USE;

/* Zeroes n bytes in a way the compiler cannot drop (OPENSSL_cleanse). */
void cl_nkey_wipe(void *p, size_t n);

#endif
