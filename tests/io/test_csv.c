/* CSV reader: RFC 4180 cases, malformed input with file:line errors, Python dict literals, and the
 * real ptbxl_database.csv cross-checked against Python's csv module (when ../shared is present). */
#include <stdint.h>

#include "io/csv.h"
#include "mrmnet.h"
#include "test_util.h"

static int parse(mrm_csv *c, const char *text, mrm_error *err) {
    return mrm_csv_parse(c, "t.csv", text, strlen(text), err);
}

static void test_rfc4180(void) {
    mrm_csv c;
    mrm_error err = {0};
    const char *t = "\xEF\xBB\xBF" "id,text,x\r\n"
                    "1,\"hello, world\",2.5\r\n"
                    "2,\"say \"\"hi\"\"\",\r\n"
                    "\r\n"
                    "3,\"two\nlines\r\nhere\",-1\n"
                    "4,sinusrhythmus \xc3\xbc\xc3\x9f,\"{'NORM': 100.0, 'SR': 0.0}\"";
    CHECK(parse(&c, t, &err) == MRM_OK, "%s", err.msg);
    CHECK(c.n_cols == 3 && c.n_rows == 4, "cols %d rows %d", c.n_cols, c.n_rows);
    if (c.n_rows == 4) {
        CHECK(mrm_csv_col(&c, "id") == 0 && mrm_csv_col(&c, "x") == 2 && mrm_csv_col(&c, "nope") == -1, "col lookup");
        CHECK(!strcmp(mrm_csv_cell(&c, 0, 1), "hello, world"), "comma in quotes: '%s'", mrm_csv_cell(&c, 0, 1));
        CHECK(!strcmp(mrm_csv_cell(&c, 1, 1), "say \"hi\""), "doubled quotes: '%s'", mrm_csv_cell(&c, 1, 1));
        CHECK(!strcmp(mrm_csv_cell(&c, 1, 2), ""), "empty last field");
        CHECK(!strcmp(mrm_csv_cell(&c, 2, 1), "two\nlines\r\nhere"), "newlines kept inside quotes");
        CHECK(!strcmp(mrm_csv_cell(&c, 3, 1), "sinusrhythmus \xc3\xbc\xc3\x9f"), "UTF-8 kept");
        CHECK(!strcmp(mrm_csv_cell(&c, 3, 2), "{'NORM': 100.0, 'SR': 0.0}"), "dict cell");
        CHECK(c.row_line[0] == 2 && c.row_line[1] == 3 && c.row_line[2] == 5 && c.row_line[3] == 8,
              "row lines %d %d %d %d", c.row_line[0], c.row_line[1], c.row_line[2], c.row_line[3]);
        int col;
        CHECK(mrm_csv_require_col(&c, "missing", &col, &err) != MRM_OK && strstr(err.msg, "t.csv:1: no column 'missing'"),
              "require_col message: %s", err.msg);
    }
    mrm_csv_free(&c);

    CHECK(parse(&c, "a,b\n1,2", &err) == MRM_OK && c.n_rows == 1 && !strcmp(mrm_csv_cell(&c, 0, 1), "2"), "no final newline");
    mrm_csv_free(&c);
    CHECK(parse(&c, "a,b\n1,\n", &err) == MRM_OK && c.n_rows == 1 && !strcmp(mrm_csv_cell(&c, 0, 1), ""), "trailing comma");
    mrm_csv_free(&c);
    CHECK(parse(&c, "a,b\n", &err) == MRM_OK && c.n_rows == 0 && c.n_cols == 2, "header only");
    mrm_csv_free(&c);
    CHECK(parse(&c, "a\n\"\"\"\"\n", &err) == MRM_OK && c.n_rows == 1 && !strcmp(mrm_csv_cell(&c, 0, 0), "\""), "only a quote");
    mrm_csv_free(&c);
}

static void expect_fail(const char *text, size_t len, const char *needle, const char *what) {
    mrm_csv c;
    mrm_error err = {0};
    mrm_status st = mrm_csv_parse(&c, "bad.csv", text, len, &err);
    CHECK(st != MRM_OK, "%s: accepted", what);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    CHECK(c.cells == NULL && c.buf == NULL, "%s: not left empty", what);
    mrm_csv_free(&c);
}

static void test_malformed(void) {
    const char *t;
    t = "a,b\n1,2\n3,\"open\nstill open\n";
    expect_fail(t, strlen(t), "bad.csv:3: unbalanced quote", "unbalanced quote reports the line where it started");
    t = "a,b\n1,2\n3,4,5\n";
    expect_fail(t, strlen(t), "bad.csv:3: row has 3 fields, the header has 2", "too many fields");
    t = "a,b,c\n1,2\n";
    expect_fail(t, strlen(t), "bad.csv:2: row has 2 fields", "too few fields");
    expect_fail("", 0, "empty file", "empty");
    expect_fail("\n\r\n\n", 4, "empty file", "blank lines only");
    t = "a,b\n\"x\"y,2\n";
    expect_fail(t, strlen(t), "bad.csv:2: unexpected character 'y' after a closing quote", "text after quote");
    t = "a,b\nx\"y,2\n";
    expect_fail(t, strlen(t), "bad.csv:2: quote inside an unquoted field", "stray quote");
    expect_fail("a,b\n1,\0\n", 7, "bad.csv:2: NUL byte", "NUL");

    /* random bytes: must never crash; whatever parses must be consistent */
    uint32_t s = 777;
    char buf[600];
    for (int it = 0; it < 3000; it++) {
        size_t n = 1 + it % 500;
        for (size_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            unsigned r = s >> 24;
            buf[i] = (char)(it % 2 ? "ab,\"\n\r x"[r % 8] : (char)r);
        }
        mrm_csv c;
        if (mrm_csv_parse(&c, "rand.csv", buf, n, NULL) == MRM_OK) {
            size_t total = 0;
            for (int r = 0; r < c.n_rows; r++)
                for (int k = 0; k < c.n_cols; k++) total += strlen(mrm_csv_cell(&c, r, k));
            CHECK(total <= n, "random: more text out than in");
        }
        mrm_csv_free(&c);
    }
    mrm_csv c;
    mrm_error err = {0};
    CHECK(mrm_csv_read(&c, "/nonexistent/x.csv", &err) == MRM_ERR_NOTFOUND && strstr(err.msg, "/nonexistent/x.csv"),
          "missing file: %s", err.msg);
}

static void test_dict(void) {
    mrm_dict_entry e[8];
    int n;
    mrm_error err = {0};
    CHECK(mrm_parse_dict_literal("{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}", e, 8, &n, &err) == MRM_OK, "%s", err.msg);
    CHECK(n == 3 && !strcmp(e[0].key, "NORM") && e[0].value == 100.0 && !strcmp(e[1].key, "LVOLT") && !strcmp(e[2].key, "SR"),
          "entries");
    CHECK(mrm_parse_dict_literal("{}", e, 8, &n, &err) == MRM_OK && n == 0, "empty dict");
    CHECK(mrm_parse_dict_literal(" { \"1AVB\" : 100 , 'STE_':50, } ", e, 8, &n, &err) == MRM_OK && n == 2 &&
              !strcmp(e[0].key, "1AVB") && e[1].value == 50.0, "double quotes, trailing comma, int values: %s", err.msg);
    CHECK(mrm_parse_dict_literal("{'A': 1, 'A': 2}", e, 8, &n, &err) == MRM_OK && n == 1 && e[0].value == 2.0, "duplicate key");
    CHECK(mrm_parse_dict_literal("{'A': 1", e, 8, &n, &err) != MRM_OK, "unclosed");
    CHECK(mrm_parse_dict_literal("{'A: 1}", e, 8, &n, &err) != MRM_OK, "unterminated key");
    CHECK(mrm_parse_dict_literal("{A: 1}", e, 8, &n, &err) != MRM_OK && strstr(err.msg, "quoted key"), "bare key: %s", err.msg);
    CHECK(mrm_parse_dict_literal("{'A': x}", e, 8, &n, &err) != MRM_OK && strstr(err.msg, "not a number"), "bad value");
    CHECK(mrm_parse_dict_literal("{'A': nan}", e, 8, &n, &err) != MRM_OK, "nan value");
    CHECK(mrm_parse_dict_literal("{'A': 1} x", e, 8, &n, &err) != MRM_OK, "trailing text");
    CHECK(mrm_parse_dict_literal("", e, 8, &n, &err) != MRM_OK, "empty text");
    CHECK(mrm_parse_dict_literal("{'A': 1, 'B': 2, 'C': 3}", e, 2, &n, &err) != MRM_OK, "too many keys");
    double d;
    long l;
    CHECK(mrm_parse_double(" 2.5 ", &d) == 0 && d == 2.5, "double");
    CHECK(mrm_parse_double("", &d) != 0 && mrm_parse_double("nan", &d) != 0 && mrm_parse_double("1x", &d) != 0, "bad doubles");
    CHECK(mrm_parse_long("10", &l) == 0 && l == 10 && mrm_parse_long("1.0", &l) != 0, "long");
}

/* The real PTB-XL table: rows, columns and a digest of every cell compared with Python's csv. */
static void test_ptbxl_table(void) {
    const char *shared = test_shared_dir();
    if (!shared) {
        printf("no shared data: PTB-XL table check skipped\n");
        return;
    }
    char path[4096], cmd[8192];
    snprintf(path, sizeof path, "%s/data/ptb-xl/ptbxl_database.csv", shared);
    mrm_csv c;
    mrm_error err = {0};
    CHECK(mrm_csv_read(&c, path, &err) == MRM_OK, "%s", err.msg);
    CHECK(c.n_rows == 1987 && c.n_cols == 28, "rows %d cols %d", c.n_rows, c.n_cols);
    /* digest: sum over cells of (row+1)*(col+1)*bytes, and of newline counts */
    unsigned long long dig = 0, nl = 0;
    for (int r = 0; r < c.n_rows; r++)
        for (int k = 0; k < c.n_cols; k++) {
            const char *s = mrm_csv_cell(&c, r, k);
            dig += (unsigned long long)(r + 1) * (unsigned long long)(k + 1) * strlen(s);
            for (; *s; s++) nl += *s == '\n';
        }
    int scp = mrm_csv_col(&c, "scp_codes");
    int bad = 0;
    for (int r = 0; scp >= 0 && r < c.n_rows; r++) {
        mrm_dict_entry e[64];
        int n;
        if (mrm_parse_dict_literal(mrm_csv_cell(&c, r, scp), e, 64, &n, &err) != MRM_OK) bad++;
    }
    CHECK(scp == 11 && bad == 0, "scp_codes: %d rows failed: %s", bad, err.msg);
    if (system("/usr/bin/python3 -c 'import csv' 2>/dev/null") == 0) {
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import csv,sys; rows=list(csv.reader(open('%s', newline='', encoding='utf-8')))[1:]; "
                 "print(sum((r+1)*(k+1)*len(v.encode()) for r,row in enumerate(rows) for k,v in enumerate(row)), "
                 "sum(v.count(chr(10)) for row in rows for v in row))\"", path);
        FILE *p = popen(cmd, "r");
        unsigned long long pd = 0, pn = 0;
        int got = p ? fscanf(p, "%llu %llu", &pd, &pn) : 0;
        if (p) pclose(p);
        CHECK(got == 2 && pd == dig && pn == nl, "digest %llu/%llu vs Python's %llu/%llu", dig, nl, pd, pn);
    }
    mrm_csv_free(&c);
}

int main(void) {
    test_rfc4180();
    test_malformed();
    test_dict();
    test_ptbxl_table();
    TEST_END();
}
