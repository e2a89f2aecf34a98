"""The worker's files call each other in one direction only (DESIGN.md:
calls go down, events come up through callbacks): scripts/module-graph reads
the object files' symbol tables and finds no two files that reach each
other. A cycle fails this test with the files named."""
import os
import subprocess
import unittest

from herdtest import BUILD, ROOT


class Layering(unittest.TestCase):
    def test_no_two_worker_files_call_each_other(self):
        if not os.path.isdir(os.path.join(BUILD, "worker")):
            self.skipTest("no worker objects in %s" % BUILD)
        p = subprocess.run([os.path.join(ROOT, "scripts", "module-graph"), "--build", BUILD,
                            "--check"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        graph = dict(l.split(" -> ") for l in p.stdout.splitlines())
        self.assertEqual(graph["main".ljust(14)].strip(), "worker")
        for low in ("store", "chan", "tls"):
            self.assertEqual(graph[low.ljust(14)].strip(), "-", low + " calls up")
        # conn sits on the byte transports only: stream (plaintext or TLS), tls.
        self.assertEqual(graph["conn".ljust(14)].split(), ["stream", "tls"], "conn calls up")
        self.assertEqual(graph["stream".ljust(14)].split(), ["tls"], "stream calls up")
