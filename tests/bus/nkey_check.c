/* Test helper (not installed) for tests/python/test_nkeys_format.py, which
 * checks our NKey encoding against the reference implementation (PyPI
 * nkeys):
 *
 *   nkey_check           reads seeds, one a line, from stdin and prints
 *                        the public key we derive for each, or
 *                        "ERR <why>" when we refuse the seed
 *   nkey_check --new N   prints N new key pairs, "<seed> <public key>" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_nkey.h"

static int print_new(int n)
{
    for (int i = 0; i < n; i++) {
        char seed[CL_NKEY_SEED_LEN + 1], pub[CL_NKEY_PUBLIC_LEN + 1];
        cl_err err;
        if (cl_nkey_user_new(seed, pub, &err) != CL_OK) {
            fprintf(stderr, "nkey_check: %s\n", err.msg);
            return 1;
        }
        printf("%s %s\n", seed, pub);
        cl_nkey_wipe(seed, sizeof(seed));
    }
    return 0;
}

static int derive_each(void)
{
    char line[256];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char pub[CL_NKEY_PUBLIC_LEN + 1];
        cl_err err;
        if (cl_nkey_public_from_seed(line, pub, &err) == CL_OK)
            printf("%s\n", pub);
        else
            printf("ERR %s\n", err.msg);
    }
    cl_nkey_wipe(line, sizeof(line));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--new") == 0)
        return print_new(atoi(argv[2]));
    if (argc == 1)
        return derive_each();
    fprintf(stderr, "usage: nkey_check [--new N] (seeds on stdin)\n");
    return 2;
}
