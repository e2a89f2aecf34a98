"""Fuzzes every libFuzzer target in tests/fuzz for a short while, so each
`make test` replays the checked-in corpus (every past crash) and explores a
little further. Builds into a temp folder with the tests/fuzz Makefile and
never writes into the checked-in corpus. Skipped when clang or its libFuzzer
runtime is missing. HERD_FUZZ_SECONDS sets the time per target (10).
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from herdtest import ROOT

FUZZ_DIR = os.path.join(ROOT, "tests", "fuzz")
SECONDS = int(os.environ.get("HERD_FUZZ_SECONDS", "10"))


def make(out, *args, timeout=600):
    """Runs make in tests/fuzz with OUT as its build folder."""
    cmd = ["make", "-s", "-C", FUZZ_DIR, "FUZZ_OUT=" + os.path.join(out, "out"),
           "FUZZ_BIN=" + os.path.join(out, "bin")] + list(args)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)


def targets():
    try:
        p = subprocess.run(["make", "-s", "-C", FUZZ_DIR, "list"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return p.stdout.decode().split() if p.returncode == 0 else []


class Fuzz(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="herdfuzz-")
        cls.why_not = None
        if shutil.which("clang") is None:
            cls.why_not = "clang not installed"
        elif make(cls.out, "probe", timeout=120).returncode != 0:
            cls.why_not = "clang cannot link -fsanitize=fuzzer (libFuzzer runtime missing)"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def fuzz(self, target):
        if self.why_not:
            self.skipTest(self.why_not)
        p = make(self.out, "run", "FUZZ_TARGETS=" + target, "FUZZ_SECONDS=%d" % SECONDS,
                 timeout=SECONDS + 300)
        text = p.stdout.decode(errors="replace")
        print(text[-3000:], flush=True)
        self.assertEqual(p.returncode, 0, "%s failed:\n%s" % (target, text[-6000:]))


def _add(target):
    def test(self):
        self.fuzz(target)
    test.__name__ = "test_" + target
    test.__doc__ = "%s runs %d s over its corpus without a crash" % (target, SECONDS)
    setattr(Fuzz, test.__name__, test)


for _t in targets():
    _add(_t)

if not targets():
    def test_no_targets(self):
        self.skipTest("no fuzz targets found in tests/fuzz")
    Fuzz.test_no_targets = test_no_targets
