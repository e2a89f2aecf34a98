#!/usr/bin/env python3
"""Runs one integration test module and prints a result line per test case:
"::PASS name", "::FAIL name reason", "::SKIP name reason". Tracebacks of
failures follow their line, so the runner can show them."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def _name(self, test):
        return test.id().split(".", 1)[-1]

    def addSuccess(self, test):
        super().addSuccess(test)
        print("::PASS %s %.2fs" % (self._name(test), time.monotonic() - self._t0), flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        print("::FAIL %s failure" % self._name(test), flush=True)
        print(self._exc_info_to_string(err, test), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print("::FAIL %s error" % self._name(test), flush=True)
        print(self._exc_info_to_string(err, test), flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        print("::SKIP %s %s" % (self._name(test), reason), flush=True)


def main():
    mod = sys.argv[1]
    suite = unittest.defaultTestLoader.loadTestsFromName(mod)
    runner = unittest.TextTestRunner(stream=open(os.devnull, "w"), resultclass=Result,
                                     verbosity=0)
    res = runner.run(suite)
    sys.exit(0 if res.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
