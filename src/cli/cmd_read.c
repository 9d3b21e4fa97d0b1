/* mrmnet read: placeholder until the subcommand lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_read(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "mrmnet %s: not built yet\n", argv[0]);
    return 1;
}
