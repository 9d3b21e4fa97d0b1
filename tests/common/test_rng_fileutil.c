/* The random generator and the file utilities. */
#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "test_util.h"

int main(void) {
    mrm_rng a, b;
    mrm_rng_seed(&a, 42);
    mrm_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= mrm_rng_next(&a) == mrm_rng_next(&b);
    CHECK(same, "same seed, same stream");
    double sum = 0;
    int inrange = 1;
    for (int i = 0; i < 100000; i++) {
        float u = mrm_rng_uniform(&a);
        inrange &= u >= 0.0f && u < 1.0f;
        sum += u;
    }
    CHECK(inrange, "uniform in [0,1)");
    CHECK(fabs(sum / 100000 - 0.5) < 0.01, "mean %g", sum / 100000);
    int idx[100], seen[100] = {0}, perm = 1;
    for (int i = 0; i < 100; i++) idx[i] = i;
    mrm_rng_shuffle(&a, idx, 100);
    for (int i = 0; i < 100; i++) seen[idx[i]]++;
    for (int i = 0; i < 100; i++) perm &= seen[i] == 1;
    CHECK(perm, "shuffle is a permutation");

    char path[4096], *data;
    size_t len;
    mrm_error err;
    CHECK(mrm_path_join(path, sizeof path, test_tmp_dir(), "atomic.txt") == 0, "join");
    CHECK(mrm_write_file_atomic(path, "hello", 5, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_read_file(path, 100, &data, &len, &err) == MRM_OK && len == 5 && !memcmp(data, "hello", 5), "read back");
    free(data);
    CHECK(mrm_read_file(path, 3, &data, &len, &err) == MRM_ERR_FORMAT, "size limit");
    CHECK(mrm_read_file("/nonexistent/x", 3, &data, &len, &err) == MRM_ERR_NOTFOUND, "missing");
    CHECK(strstr(err.msg, "/nonexistent/x") != NULL, "message names the file: %s", err.msg);
    size_t s;
    CHECK(mrm_mul_size(SIZE_MAX / 2, 3, &s) == -1, "overflow detected");
    CHECK(mrm_mul_size(1000, 1000, &s) == 0 && s == 1000000, "product");
    TEST_END();
}
