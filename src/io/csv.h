/* CSV (RFC 4180): quoted fields, doubled quotes, newlines inside quotes, CRLF or LF line ends.
 * The first row is the header; columns are looked up by name. Also: Python dict literals of the
 * form {'NORM': 100.0, 'SR': 0.0} as PTB-XL's scp_codes column holds them. */
#ifndef MRM_IO_CSV_H
#define MRM_IO_CSV_H

#include "mrmnet.h"

typedef struct mrm_csv {
    char path[1024];   /* for error messages */
    int n_cols;        /* columns of the header */
    int n_rows;        /* data rows (header excluded) */
    char **header;     /* n_cols names */
    char **cells;      /* (n_rows, n_cols), row-major; every cell a NUL-terminated string */
    int *row_line;     /* the 1-based line of the file where each data row starts */
    char *buf;         /* storage of all strings */
} mrm_csv;

/* Reads a whole CSV file. Every row must have as many fields as the header; a row that is
 * entirely empty (a blank line) is skipped. Errors name file:line. A UTF-8 byte order mark at the
 * start is ignored. */
mrm_status mrm_csv_read(mrm_csv *csv, const char *path, mrm_error *err);
/* Parses CSV text held in memory (`name` is used in messages). */
mrm_status mrm_csv_parse(mrm_csv *csv, const char *name, const char *text, size_t len, mrm_error *err);
void mrm_csv_free(mrm_csv *csv);

/* The index of the column named `name`, or -1. */
int mrm_csv_col(const mrm_csv *csv, const char *name);
/* Same, failing with "file:1: no column 'name'" when absent. */
mrm_status mrm_csv_require_col(const mrm_csv *csv, const char *name, int *col, mrm_error *err);
/* The cell of data row `row`, column `col`. */
static inline const char *mrm_csv_cell(const mrm_csv *csv, int row, int col) {
    return csv->cells[(size_t)row * (size_t)csv->n_cols + (size_t)col];
}

/* A Python dict literal of string keys to numbers, e.g. {'NORM': 100.0, 'SR': 0.0} or {}.
 * Keys in single or double quotes; values are numbers (int or float). */
typedef struct mrm_dict_entry {
    char key[64];
    double value;
} mrm_dict_entry;
/* Parses `text` into at most max_entries entries; *n receives the count. Duplicate keys keep the
 * last value (as Python does). On error the message says what is wrong and where (no file name:
 * the caller prefixes it). */
mrm_status mrm_parse_dict_literal(const char *text, mrm_dict_entry *entries, int max_entries, int *n,
                                  mrm_error *err);

/* Strict number parsing of a whole cell: returns 0 and sets *out, -1 if the text is not a number.
 * Accepts surrounding spaces. "nan"/"" are not numbers. */
int mrm_parse_double(const char *s, double *out);
int mrm_parse_long(const char *s, long *out);
/* An integer written as one ("5") or as an integral decimal ("5.0", "5e3", as pandas writes
 * integer columns that have blanks), within +-2^53; -1 otherwise (also for "1e300": no
 * out-of-range conversion). */
int mrm_parse_integer(const char *s, long *out);

#endif
