/* mrmnet read: print a record's signals as CSV, or a summary of its header and checks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet read RECORD [--csv] [--strict] [--representative]\n\n"
               "RECORD is a WFDB record (name, or its .hea), an original CPSC2018 .mat file, or a file of HL7\n"
               "aECG, GE MUSE or Philips Sierra XML, SCP-ECG, DICOM waveform or EDF (told apart by content).\n"
               "  --representative  the representative (median) beats instead of the rhythm (aECG, MUSE, SCP)\n"
               "  --csv     print the signals: a line of signal names, then one line per sample with each\n"
               "            signal's physical value (%%.9g, 'nan' for a missing sample)\n"
               "  --strict  a checksum or initial-value mismatch, or an invalid sample, is an error (without\n"
               "            it, a warning on stderr)\n"
               "Without --csv, print the record's header fields and the result of its checks.\n");
}

/* A CSV field: quoted when it holds a comma or a quote (RFC 4180). */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void print_csv(const mrm_record *rec) {
    for (int s = 0; s < rec->n_signals; s++) {
        if (s) fputc(',', stdout);
        if (rec->signals[s].description[0])
            csv_field(stdout, rec->signals[s].description);
        else
            printf("signal%d", s + 1);
    }
    fputc('\n', stdout);
    long long n = rec->n_samples;
    char buf[64];
    for (long long t = 0; t < n; t++) {
        for (int s = 0; s < rec->n_signals; s++) {
            double v = rec->data[(size_t)s * (size_t)n + (size_t)t];
            if (s) fputc(',', stdout);
            if (isnan(v)) {
                fputs("nan", stdout);
            } else {
                snprintf(buf, sizeof buf, "%.9g", v);
                fputs(buf, stdout);
            }
        }
        fputc('\n', stdout);
    }
}

static const char *check_word(int ok) { return ok > 0 ? "ok" : ok == 0 ? "MISMATCH" : "not given"; }

static void print_summary(const mrm_record *rec) {
    printf("record:   %s\n", rec->name);
    printf("format:   %s%s\n", rec->format, rec->representative ? " (representative beats)" : "");
    printf("signals:  %d\n", rec->n_signals);
    printf("rate:     %g Hz\n", rec->fs);
    printf("length:   %lld samples (%.3f s)\n", rec->n_samples, (double)rec->n_samples / rec->fs);
    if (rec->base_time[0] || rec->base_date[0]) printf("start:    %s %s\n", rec->base_time, rec->base_date);
    if (rec->acquired[0]) printf("acquired: %s\n", rec->acquired);
    if (rec->age >= 0) printf("age:      %d\n", rec->age);
    if (rec->sex[0]) printf("sex:      %s\n", rec->sex);
    if (rec->dx[0]) printf("dx:       %s\n", rec->dx);
    printf("\n  # %-10s %-14s %6s %10s %8s %-6s %-10s %-10s\n", "signal", "file", "format", "gain", "baseline", "units",
           "checksum", "init value");
    for (int s = 0; s < rec->n_signals; s++) {
        const mrm_signal_info *si = &rec->signals[s];
        const mrm_signal_check *c = &rec->checks[s];
        char fmt[32];
        if (si->derived)
            snprintf(fmt, sizeof fmt, "-");
        else if (si->format)
            snprintf(fmt, sizeof fmt, si->byte_offset ? "%d+%lld" : "%d", si->format, si->byte_offset);
        else
            snprintf(fmt, sizeof fmt, "%s", !strcmp(rec->format, "matlab-v5") ? "mat v5" : "-");
        printf("%3d %-10s %-14s %6s %10g %8d %-6s %-10s %-10s\n", s + 1, si->description[0] ? si->description : "-",
               si->derived ? "(derived)" : si->file[0] ? si->file : "-", fmt, si->gain, si->baseline, si->units[0] ? si->units : "-",
               check_word(c->checksum_ok), check_word(c->init_value_ok));
    }
    if (rec->n_comments) {
        printf("\ncomments:\n");
        for (int i = 0; i < rec->n_comments; i++) printf("  %s\n", rec->comments[i]);
    }
}

int cmd_read(int argc, char **argv) {
    const char *path = NULL;
    int csv = 0, flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--csv")) {
            csv = 1;
        } else if (!strcmp(argv[i], "--representative")) {
            flags |= MRM_READ_REPRESENTATIVE;
        } else if (!strcmp(argv[i], "--strict")) {
            flags |= MRM_READ_STRICT;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mrmnet read: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "mrmnet read: one record at a time ('%s' and '%s' given)\n", path, argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    mrm_record rec;
    mrm_error err = {0};
    if (mrm_record_read(&rec, path, flags, &err)) return cli_report("read", &err);
    char why[1024];
    if (mrm_record_integrity_check(&rec, NULL, why, sizeof why)) {
        if (flags & MRM_READ_STRICT) { /* only invalid samples are left for --strict to refuse here */
            fprintf(stderr, "mrmnet read: %s: %s (an error with --strict)\n", path, why);
            mrm_record_free(&rec);
            return 1;
        }
        fprintf(stderr, "mrmnet read: warning: %s: %s\n", path, why);
    }
    if (csv)
        print_csv(&rec);
    else
        print_summary(&rec);
    mrm_record_free(&rec);
    return 0; /* standard output is checked by main */
}
