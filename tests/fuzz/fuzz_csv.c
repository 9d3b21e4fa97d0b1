/* Fuzz harness: CSV text parsed from memory, then every cell through the number and dict-literal
 * parsers the table readers use. */
#include <stdint.h>
#include <stdlib.h>

#include "io/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrm_csv csv;
    mrm_error err;
    if (mrm_csv_parse(&csv, "fuzz.csv", (const char *)data, size, &err) != MRM_OK) return 0;
    mrm_csv_col(&csv, "ecg_id");
    for (int r = 0; r < csv.n_rows; r++)
        for (int c = 0; c < csv.n_cols; c++) {
            const char *s = mrm_csv_cell(&csv, r, c);
            double d;
            long l;
            mrm_parse_double(s, &d);
            mrm_parse_long(s, &l);
            mrm_parse_integer(s, &l); /* ids and folds */
            mrm_dict_entry e[16];
            int n;
            mrm_parse_dict_literal(s, e, 16, &n, &err);
        }
    mrm_csv_free(&csv);
    return 0;
}
