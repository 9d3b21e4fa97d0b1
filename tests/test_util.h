/* A minimal test harness: CHECK records a failure and goes on; the test ends with
 * TEST_END() printing "N passed, N failed" and returning non-zero on any failure.
 * A test that cannot run (no ../shared, say) calls TEST_SKIP("why"): exit code 77. */
#ifndef MRM_TEST_UTIL_H
#define MRM_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_passed_, test_failed_;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) {                                                          \
            test_passed_++;                                                  \
        } else {                                                             \
            test_failed_++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
        }                                                                    \
    } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_CLOSE(a, b, tol, what)                                                       \
    do {                                                                                   \
        double a_ = (a), b_ = (b);                                                         \
        CHECK(fabs(a_ - b_) <= (tol) * fmax(1.0, fabs(b_)), "%s: %.9g vs %.9g", what, a_, b_); \
    } while (0)

#define TEST_END()                                                           \
    do {                                                                     \
        printf("%d passed, %d failed\n", test_passed_, test_failed_);       \
        return test_failed_ ? 1 : 0;                                         \
    } while (0)

#define TEST_SKIP(why)                                                       \
    do {                                                                     \
        printf("skipped: %s\n", why);                                        \
        exit(77);                                                            \
    } while (0)

/* The shared data folder, or NULL when absent. */
static inline const char *test_shared_dir(void) {
    const char *d = getenv("MRM_SHARED");
    struct stat st;
    if (!d || stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return d;
}

/* A scratch folder for this test. */
static inline const char *test_tmp_dir(void) {
    const char *d = getenv("MRM_TMPDIR");
    return d ? d : "/tmp";
}

#endif
