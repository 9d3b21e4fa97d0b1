"""mrmnet train with a training split whose last batch holds one record: the batch is skipped
with a warning (the channel attention's BatchNorm has no batch statistics for one record), the
other batches train, and the run completes."""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

d = os.path.join(TMP, "prep_single")
make_prepared(d, n=(9, 6, 6))
out = os.path.join(TMP, "run_single")
shutil.rmtree(out, ignore_errors=True)  # train refuses a non-empty folder (an earlier run of this test)
rc, _, err = run("train", "--data", d, "--out", out, "--epochs", "2", "--batch", "4", "--width", "4", "--quiet")
check(rc == 0, "training with a last batch of one record succeeds: " + err[-500:])
check("single record" in err, "a warning says the single-record batch is skipped: " + err[-500:])
check(err.count("single record") == 1, "the warning is given once")
tensors, meta, _ = read_safetensors(os.path.join(out, "last.safetensors"))
check(any(k.endswith("num_batches_tracked") for k in tensors), "checkpoint holds the BN counters")
nbt = [v for k, v in tensors.items() if k == "BaseBlock.conv_block1.1.num_batches_tracked"]
check(len(nbt) == 1 and int(nbt[0].reshape(-1)[0]) == 4, "2 epochs x 2 batches of 4 trained: %s" % nbt)
end()
