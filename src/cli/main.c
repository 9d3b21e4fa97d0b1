/* mrmnet: the command-line tool. Dispatches to one subcommand per file (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    mrm_cli_command_fn fn;
    const char *help;
} commands[] = {
    {"read", cmd_read, "print a record's signals (--csv) or a summary"},
    {"check", cmd_check, "validate every record under a folder"},
    {"prepare", cmd_prepare, "build train/val/test arrays from PTB-XL, CPSC2018 or your records"},
    {"init", cmd_init, "create a model with fresh weights"},
    {"info", cmd_info, "describe a weight file"},
    {"forward", cmd_forward, "run the model on an .npy batch, write logits and features"},
    {"backward", cmd_backward, "one training-mode forward and backward, write loss and gradients"},
    {"train", cmd_train, "train a model on a prepared dataset"},
    {"eval", cmd_eval, "evaluate a model on a prepared split"},
    {"ablate", cmd_ablate, "train and compare the model's variants over seeds (the ablation study)"},
    {"predict", cmd_predict, "label raw recordings"},
    {"explain", cmd_explain, "maps of what drove each class's score (Grad-CAM, input x gradient)"},
    {"report", cmd_report, "a printable HTML page per recording: the 12 leads, the labels and what drove them"},
    {"bench", cmd_bench, "time training and inference"},
    {"export", cmd_export, "compile a model for the embeddable engine (image file or C source)"},
    {"quantize", cmd_quantize, "int8 engine image of a model, calibrated on training records; float vs int8 test AUC"},
};

static void usage(FILE *f) {
    fprintf(f, "mrmnet %s: MRM-Net for multi-label 12-lead ECG classification\n\n"
               "usage: mrmnet <command> [options]   (mrmnet <command> --help for each)\n\ncommands:\n",
            MRMNET_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    cli_stdout_begin();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return cli_stdout_end(NULL);
    }
    if (!strcmp(argv[1], "--version")) {
        printf("mrmnet %s\n", MRMNET_VERSION);
        return cli_stdout_end(NULL);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].fn(argc - 1, argv + 1);
            /* every command's standard output is checked here: a failed write is never an exit 0 */
            if (cli_stdout_end(commands[i].name) && rc == 0) rc = 1;
            return rc;
        }
    fprintf(stderr, "mrmnet: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
