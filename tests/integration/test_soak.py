"""A short chaos soak in `make test`: tests/soak/soak.py for HERD_SOAK_SECONDS
(10) against the binaries under test. The five-server herd takes updates
while random workers are SIGKILLed every 200-500 ms; afterwards every server
must hold the newest record of every client: 0 lost, 0 stale, 0 corrupt."""
import json
import os
import signal
import subprocess
import sys

from herdtest import BIN, ROOT, HerdTestCase

SOAK = os.path.join(ROOT, "tests", "soak", "soak.py")
SECONDS = float(os.environ.get("HERD_SOAK_SECONDS", "10"))


class Soak(HerdTestCase):
    def test_chaos_soak_loses_nothing(self):
        cmd = [sys.executable, SOAK, "--bin", BIN, "--seconds", str(SECONDS),
               "--rate", "800", "--settle", "20", "--workdir", self.tmp]
        # Same process group: if the runner gives up on us, it stops the
        # soak's supervisor and workers too. On our own timeout, SIGTERM lets
        # the soak stop them by PID.
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            data, _ = p.communicate(timeout=SECONDS + 120)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            try:
                data, _ = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                data, _ = p.communicate()
        out = data.decode(errors="replace")
        print(out, flush=True)
        lines = [l for l in out.splitlines() if l.startswith("SOAK ")]
        self.assertTrue(lines, "soak printed no result:\n" + out[-4000:])
        res = json.loads(lines[-1][5:])
        self.assertTrue(res, "soak did not run:\n" + out[-4000:])
        self.assertGreater(res["kills"], 0)
        self.assertGreater(res["acknowledged"], 0)
        self.assertEqual((res["lost"], res["stale"], res["corrupt"]), (0, 0, 0), out[-4000:])
        self.assertEqual(p.returncode, 0, out[-4000:])
