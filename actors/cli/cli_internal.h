/* The clipper program's subcommands (one file each) and the small helpers
 * they share. Exit codes: 0 success, 1 the command failed, 2 bad usage. */
#ifndef CLI_INTERNAL_H
#define CLI_INTERNAL_H

#include <stdio.h>

int cl__cli_start(int argc, char **argv);
int cl__cli_admin(int argc, char **argv);
int cl__cli_predict(int argc, char **argv);
int cl__cli_supervised(int argc, char **argv); /* argv[0] is "--supervised" */

/* Parses a whole decimal number in [min, max]; prints an error naming the
 * option and returns -1 when it is not one. */
int cl__cli_parse_int(const char *cmd, const char *option, const char *text, long min, long max,
                      long *out);

#endif
