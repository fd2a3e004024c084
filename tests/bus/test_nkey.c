/* Unit tests of NKey user keys and credential files (bus/nkey.c): the text
 * format, what a broken seed is refused for, signatures cnats makes with
 * our seeds checked by OpenSSL against our public keys, and file modes. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <nats/nats.h>
#include <openssl/evp.h>

#include "cl_nkey.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* The ed25519 seed 00 01 02 .. 1f as a user, encoded by the reference
 * implementation (PyPI nkeys 0.2.1: encode_seed, from_seed().public_key). */
static const char ref_seed[] = "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y";
static const char ref_pub[] = "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK";
/* The same seed bytes as an account ("SA"), with a valid checksum. */
static const char ref_account_seed[] = "SAAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4HYMHI";

static char dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cl-test-nkey-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    return nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void in_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void assert_contains(const char *msg, const char *want)
{
    /* (GCC with UBSan warns of a NULL msg unless told there is none.) */
    const char *text = msg != NULL ? msg : "(null)";
    if (strstr(text, want) == NULL)
        fail_msg("expected \"%s\" in: %s", want, text);
}

static bool all_base32(const char *s)
{
    return s[strspn(s, alphabet)] == '\0';
}

static void test_new_user_keys_have_the_nkey_format(void **state)
{
    (void)state;
    char first[CL_NKEY_SEED_LEN + 1] = "";
    for (int i = 0; i < 50; i++) {
        char seed[CL_NKEY_SEED_LEN + 1], pub[CL_NKEY_PUBLIC_LEN + 1], again[CL_NKEY_PUBLIC_LEN + 1];
        cl_err err = {0};
        if (cl_nkey_user_new(seed, pub, &err) != CL_OK)
            fail_msg("%s", err.msg);
        assert_int_equal(strlen(seed), CL_NKEY_SEED_LEN);
        assert_int_equal(strlen(pub), CL_NKEY_PUBLIC_LEN);
        assert_memory_equal(seed, "SU", 2);
        assert_int_equal(pub[0], 'U');
        assert_true(all_base32(seed));
        assert_true(all_base32(pub));
        assert_true(cl_nkey_public_valid(pub));
        assert_int_equal(cl_nkey_public_from_seed(seed, again, &err), CL_OK);
        assert_string_equal(again, pub);
        if (i == 0)
            memcpy(first, seed, sizeof(first));
        else
            assert_string_not_equal(seed, first);
    }
}

static void test_a_known_seed_gives_the_reference_public_key(void **state)
{
    (void)state;
    char pub[CL_NKEY_PUBLIC_LEN + 1];
    cl_err err = {0};
    assert_int_equal(cl_nkey_public_from_seed(ref_seed, pub, &err), CL_OK);
    assert_string_equal(pub, ref_pub);
    unsigned char raw[CL_NKEY_RAW_LEN];
    assert_int_equal(cl_nkey_public_raw(ref_pub, raw, &err), CL_OK);
    /* RFC 8032's ed25519 public key of the seed 00 01 .. 1f begins so. */
    static const unsigned char head[] = {0x03, 0xa1, 0x07, 0xbf};
    assert_memory_equal(raw, head, sizeof(head));
}

static cl_status from_seed(const char *seed, cl_err *err)
{
    char pub[CL_NKEY_PUBLIC_LEN + 1];
    return cl_nkey_public_from_seed(seed, pub, err);
}

/* Every character after the prefix, changed to any other base32 one, is
 * caught: by the checksum, or (the last one, whose low bits are padding)
 * as an ending no encoder writes. */
static void test_a_corrupted_seed_character_is_refused_by_the_checksum(void **state)
{
    (void)state;
    for (size_t pos = 2; pos < CL_NKEY_SEED_LEN; pos++) {
        for (size_t k = 1; k < 32; k += 7) {
            char seed[CL_NKEY_SEED_LEN + 1];
            memcpy(seed, ref_seed, sizeof(seed));
            seed[pos] = alphabet[((size_t)(strchr(alphabet, seed[pos]) - alphabet) + k) % 32];
            cl_err err = {0};
            if (from_seed(seed, &err) != CL_ERR_INVALID)
                fail_msg("%s (character %zu changed) was accepted", seed, pos + 1);
            if (strstr(err.msg, "checksum") == NULL && strstr(err.msg, "cannot end") == NULL)
                fail_msg("character %zu changed: %s", pos + 1, err.msg);
        }
    }
    cl_err err = {0};
    char seed[CL_NKEY_SEED_LEN + 1];
    memcpy(seed, ref_seed, sizeof(seed));
    seed[30] = seed[30] == 'A' ? 'B' : 'A';
    assert_int_equal(from_seed(seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "checksum does not match");
}

static void test_a_seed_with_a_wrong_prefix_is_refused_naming_the_prefix(void **state)
{
    (void)state;
    cl_err err = {0};
    /* Valid checksum, wrong kind: an account seed. */
    assert_int_equal(from_seed(ref_account_seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "not a user seed");
    assert_contains(err.msg, "\"SA\", an account seed");
    /* A public key where the seed belongs. */
    assert_int_equal(from_seed(ref_pub, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "public key (U...), not a seed");
    char seed[CL_NKEY_SEED_LEN + 1];
    memcpy(seed, ref_seed, sizeof(seed));
    seed[0] = 'P';
    assert_int_equal(from_seed(seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "starts with \"SU\", this one with \"PU\"");
}

static void test_a_seed_of_the_wrong_length_or_alphabet_is_refused(void **state)
{
    (void)state;
    cl_err err = {0};
    char seed[CL_NKEY_SEED_LEN + 2];
    memcpy(seed, ref_seed, CL_NKEY_SEED_LEN + 1);
    seed[CL_NKEY_SEED_LEN - 1] = '\0';
    assert_int_equal(from_seed(seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "has 58 characters, this one has 57");
    memcpy(seed, ref_seed, CL_NKEY_SEED_LEN);
    memcpy(seed + CL_NKEY_SEED_LEN, "\n", 2);
    assert_int_equal(from_seed(seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "this one has 59");
    memcpy(seed, ref_seed, CL_NKEY_SEED_LEN + 1);
    seed[9] = 'a';
    assert_int_equal(from_seed(seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "character 10 ('a') is not base32");
    seed[9] = '1';
    assert_int_equal(from_seed(seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "character 10 ('1') is not base32");
    assert_int_equal(from_seed("", &err), CL_ERR_INVALID);
    assert_int_equal(from_seed(NULL, &err), CL_ERR_INVALID);
}

static void test_only_well_formed_user_public_keys_are_valid(void **state)
{
    (void)state;
    assert_true(cl_nkey_public_valid(ref_pub));
    assert_false(cl_nkey_public_valid(NULL));
    assert_false(cl_nkey_public_valid(""));
    assert_false(cl_nkey_public_valid(ref_seed));
    char pub[CL_NKEY_PUBLIC_LEN + 2];
    memcpy(pub, ref_pub, sizeof(ref_pub));
    pub[20] = pub[20] == 'Q' ? 'R' : 'Q';
    assert_false(cl_nkey_public_valid(pub));
    memcpy(pub, ref_pub, sizeof(ref_pub));
    pub[0] = 'A'; /* an account's public key would start so */
    assert_false(cl_nkey_public_valid(pub));
    memcpy(pub, ref_pub, sizeof(ref_pub));
    memcpy(pub + CL_NKEY_PUBLIC_LEN, "A", 2);
    assert_false(cl_nkey_public_valid(pub));
    cl_err err = {0};
    unsigned char raw[CL_NKEY_RAW_LEN];
    assert_int_equal(cl_nkey_public_raw(ref_seed, raw, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "public key starts with \"U\"");
}

static bool ed25519_verifies(const unsigned char pub[CL_NKEY_RAW_LEN], const unsigned char *sig,
                             size_t sig_len, const char *msg)
{
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, CL_NKEY_RAW_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(k);
    assert_non_null(ctx);
    bool ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)msg, strlen(msg)) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    return ok;
}

/* What nats-server checks at connect: the nonce signed by cnats with our
 * seed verifies against the public key our text encodes. */
static void test_cnats_signatures_with_our_seeds_verify_against_our_public_keys(void **state)
{
    (void)state;
    for (int i = 0; i < 10; i++) {
        char seed[CL_NKEY_SEED_LEN + 1], pub[CL_NKEY_PUBLIC_LEN + 1];
        cl_err err = {0};
        assert_int_equal(cl_nkey_user_new(seed, pub, &err), CL_OK);
        unsigned char *sig = NULL;
        int sig_len = 0;
        const char *nonce = "pPm8bkZbRzGYp4uk-nonce";
        if (nats_Sign(seed, nonce, &sig, &sig_len) != NATS_OK)
            fail_msg("nats_Sign: %s", nats_GetLastError(NULL));
        assert_int_equal(sig_len, 64);
        unsigned char raw[CL_NKEY_RAW_LEN];
        assert_int_equal(cl_nkey_public_raw(pub, raw, &err), CL_OK);
        assert_true(ed25519_verifies(raw, sig, (size_t)sig_len, nonce));
        assert_false(ed25519_verifies(raw, sig, (size_t)sig_len, "another nonce"));
        /* Another key's public half does not verify it. */
        assert_int_equal(cl_nkey_public_raw(ref_pub, raw, &err), CL_OK);
        assert_false(ed25519_verifies(raw, sig, (size_t)sig_len, nonce));
        free(sig);
    }
}

static void test_a_written_credential_file_is_0600_and_reads_back(void **state)
{
    (void)state;
    char path[128];
    in_dir(path, sizeof(path), "router.cred");
    char seed[CL_NKEY_SEED_LEN + 1], pub[CL_NKEY_PUBLIC_LEN + 1];
    cl_err err = {0};
    assert_int_equal(cl_nkey_user_new(seed, pub, &err), CL_OK);
    mode_t old = umask(0); /* the mode must not depend on it */
    cl_status st = cl_nkey_write_file(path, seed, "Clipper credential: role router, cluster "
                                                  "prefix clipper", &err);
    umask(old);
    if (st != CL_OK)
        fail_msg("%s", err.msg);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    char want[256];
    snprintf(want, sizeof(want), "# Clipper credential: role router, cluster prefix clipper\n%s\n",
             seed);
    char got[256] = "";
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(got, 1, sizeof(got) - 1, f);
    fclose(f);
    got[n] = '\0';
    assert_string_equal(got, want);
    char back[CL_NKEY_SEED_LEN + 1];
    if (cl_nkey_read_file(path, back, &err) != CL_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(back, seed);
    /* No temporary file is left beside it. */
    int entries = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        entries += strncmp(e->d_name, "router", 6) == 0;
    closedir(d);
    assert_int_equal(entries, 1);
}

static void test_writing_never_replaces_an_existing_credential(void **state)
{
    (void)state;
    char path[128];
    in_dir(path, sizeof(path), "once.cred");
    char seed[CL_NKEY_SEED_LEN + 1], pub[CL_NKEY_PUBLIC_LEN + 1];
    cl_err err = {0};
    assert_int_equal(cl_nkey_user_new(seed, pub, &err), CL_OK);
    assert_int_equal(cl_nkey_write_file(path, seed, NULL, &err), CL_OK);
    char other[CL_NKEY_SEED_LEN + 1];
    assert_int_equal(cl_nkey_user_new(other, pub, &err), CL_OK);
    assert_int_equal(cl_nkey_write_file(path, other, NULL, &err), CL_ERR_EXISTS);
    assert_contains(err.msg, path);
    char back[CL_NKEY_SEED_LEN + 1];
    assert_int_equal(cl_nkey_read_file(path, back, &err), CL_OK);
    assert_string_equal(back, seed);
}

static void test_writing_refuses_a_bad_seed_or_a_multiline_comment(void **state)
{
    (void)state;
    char path[128];
    in_dir(path, sizeof(path), "bad.cred");
    cl_err err = {0};
    assert_int_equal(cl_nkey_write_file(path, ref_pub, NULL, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "not writing");
    assert_int_equal(cl_nkey_write_file(path, ref_seed, "one\nSUBVERTED", &err), CL_ERR_INVALID);
    assert_contains(err.msg, "one line");
    assert_int_equal(access(path, F_OK), -1);
}

static void test_a_credential_file_readable_by_others_is_refused(void **state)
{
    (void)state;
    char path[128];
    in_dir(path, sizeof(path), "open.cred");
    char text[128];
    snprintf(text, sizeof(text), "%s\n", ref_seed);
    write_text(path, text, 0644);
    char seed[CL_NKEY_SEED_LEN + 1] = "x";
    cl_err err = {0};
    assert_int_equal(cl_nkey_read_file(path, seed, &err), CL_ERR_DENIED);
    assert_string_equal(seed, "");
    assert_contains(err.msg, path);
    assert_contains(err.msg, "is readable by others (mode 0644); chmod 600 it");
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(cl_nkey_read_file(path, seed, &err), CL_ERR_DENIED);
    assert_contains(err.msg, "(mode 0640)");
    assert_int_equal(chmod(path, 0620), 0);
    assert_int_equal(cl_nkey_read_file(path, seed, &err), CL_ERR_DENIED);
    assert_contains(err.msg, "writable or usable by others (mode 0620)");
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(cl_nkey_read_file(path, seed, &err), CL_OK);
    assert_string_equal(seed, ref_seed);
}

static void test_the_reader_takes_the_first_su_line_after_comments(void **state)
{
    (void)state;
    char path[128];
    in_dir(path, sizeof(path), "hand.cred");
    char text[512];
    /* Comments, blank lines, other lines (an nsc-style armour line),
     * leading blanks and CRLF endings around the seed. */
    snprintf(text, sizeof(text),
             "# Clipper credential: role admin, cluster prefix c1\r\n\r\n"
             "-----BEGIN USER NKEY SEED-----\r\n  \t%s  \r\n%s\n",
             ref_seed, ref_account_seed);
    write_text(path, text, 0600);
    char seed[CL_NKEY_SEED_LEN + 1];
    cl_err err = {0};
    if (cl_nkey_read_file(path, seed, &err) != CL_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(seed, ref_seed);
}

static void test_the_reader_names_the_file_and_what_is_wrong(void **state)
{
    (void)state;
    char path[128];
    char seed[CL_NKEY_SEED_LEN + 1];
    cl_err err = {0};
    in_dir(path, sizeof(path), "missing.cred");
    assert_int_equal(cl_nkey_read_file(path, seed, &err), CL_ERR_NOT_FOUND);
    assert_contains(err.msg, path);

    in_dir(path, sizeof(path), "empty.cred");
    write_text(path, "# nothing here\n\nUAB2CB576PHBBPQ5\n", 0600);
    assert_int_equal(cl_nkey_read_file(path, seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "holds no NKey user seed");

    in_dir(path, sizeof(path), "broken.cred");
    char text[128];
    snprintf(text, sizeof(text), "%s\n", ref_seed);
    text[40] = text[40] == 'Q' ? 'R' : 'Q';
    write_text(path, text, 0600);
    assert_int_equal(cl_nkey_read_file(path, seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "checksum does not match");
    assert_string_equal(seed, "");

    in_dir(path, sizeof(path), "account.cred");
    snprintf(text, sizeof(text), "# an account's seed\n%s\n", ref_account_seed);
    write_text(path, text, 0600);
    /* Not taken for a user seed ("SA", not "SU"): none is found. */
    assert_int_equal(cl_nkey_read_file(path, seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "holds no NKey user seed");

    assert_int_equal(cl_nkey_read_file(dir, seed, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "not a regular file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_user_keys_have_the_nkey_format),
        cmocka_unit_test(test_a_known_seed_gives_the_reference_public_key),
        cmocka_unit_test(test_a_corrupted_seed_character_is_refused_by_the_checksum),
        cmocka_unit_test(test_a_seed_with_a_wrong_prefix_is_refused_naming_the_prefix),
        cmocka_unit_test(test_a_seed_of_the_wrong_length_or_alphabet_is_refused),
        cmocka_unit_test(test_only_well_formed_user_public_keys_are_valid),
        cmocka_unit_test(test_cnats_signatures_with_our_seeds_verify_against_our_public_keys),
        cmocka_unit_test(test_a_written_credential_file_is_0600_and_reads_back),
        cmocka_unit_test(test_writing_never_replaces_an_existing_credential),
        cmocka_unit_test(test_writing_refuses_a_bad_seed_or_a_multiline_comment),
        cmocka_unit_test(test_a_credential_file_readable_by_others_is_refused),
        cmocka_unit_test(test_the_reader_takes_the_first_su_line_after_comments),
        cmocka_unit_test(test_the_reader_names_the_file_and_what_is_wrong),
    };
    /* cnats fills its base32 table in nats_Open: before it, nats_Sign
     * refuses every seed as "invalid seed". */
    if (nats_Open(-1) != NATS_OK)
        return 1;
    int failed = cmocka_run_group_tests(tests, setup_dir, remove_dir);
    nats_Close();
    return failed;
}
