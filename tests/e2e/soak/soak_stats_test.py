#!/usr/bin/env python3
"""Unit check of the soak's verdict (soak_stats.py) on synthetic samples:
a leak fails, allocator-like noise and an early rise that levels off pass,
thread and fd growth beyond the allowance fail, too few samples is an error."""
import os
import random
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_stats as ss  # noqa: E402

INTERVAL = 5.0
N = 120  # a 10-minute soak sampled every 5 s


def series(rss_at, threads_at=lambda t: 40, fds_at=lambda t: 30):
    return [ss.Sample(t_s=i * INTERVAL, rss_kib=rss_at(i * INTERVAL), threads=threads_at(i * INTERVAL),
                      fds=fds_at(i * INTERVAL), cycles=i * 3) for i in range(N)]


def noise(seed, amplitude_kib):
    rnd = random.Random(seed)
    return lambda t: 30000 + rnd.uniform(-amplitude_kib, amplitude_kib)


class SlopeTest(unittest.TestCase):
    def test_exact_line(self):
        ts = [0, 60, 120, 180]
        self.assertAlmostEqual(ss.slope_per_minute(ts, [100 + 7 * t / 60 for t in ts]), 7.0)

    def test_flat_and_falling(self):
        self.assertEqual(ss.slope_per_minute([0, 1, 2], [5, 5, 5]), 0.0)
        self.assertLess(ss.slope_per_minute([0, 60], [10, 0]), 0)

    def test_degenerate(self):
        with self.assertRaises(ValueError):
            ss.slope_per_minute([1], [1])
        with self.assertRaises(ValueError):
            ss.slope_per_minute([3, 3], [1, 2])


class VerdictTest(unittest.TestCase):
    def test_steady_with_page_noise_passes(self):
        for seed in range(20):  # +-512 KiB of jitter around a flat line
            v = ss.evaluate(series(noise(seed, 512)), warmup_s=120)
            self.assertTrue(v.ok, (seed, v.failures))
            self.assertLess(abs(v.slope_kib_per_min), ss.DEFAULT_MAX_SLOPE_KIB_PER_MIN)

    def test_leak_fails_and_says_slope(self):
        # 2 MiB/min, the size of leaking one small object per reconcile.
        v = ss.evaluate(series(lambda t: 30000 + 2048 * t / 60), warmup_s=120)
        self.assertFalse(v.ok)
        self.assertAlmostEqual(v.slope_kib_per_min, 2048, delta=1)
        self.assertIn("RSS still grows", v.failures[0])

    def test_leak_hidden_in_noise_fails(self):
        rnd = random.Random(7)
        v = ss.evaluate(series(lambda t: 30000 + 1536 * t / 60 + rnd.uniform(-512, 512)), warmup_s=120)
        self.assertFalse(v.ok, v)

    def test_growth_that_levels_off_in_first_half_passes(self):
        # warm-up: caches fill and arenas grow for 4 minutes, then flat.
        v = ss.evaluate(series(lambda t: 20000 + 4000 * min(t, 240) / 60), warmup_s=120)
        self.assertTrue(v.ok, v.failures)
        self.assertEqual(v.slope_kib_per_min, 0)

    def test_thread_leak_fails(self):
        v = ss.evaluate(series(noise(1, 100), threads_at=lambda t: 40 + int(t // 60)), warmup_s=120)
        self.assertFalse(v.ok)
        self.assertEqual((v.threads_warm, v.threads_end), (42, 49))
        self.assertTrue(any("threads grew" in f for f in v.failures))

    def test_threads_within_allowance_pass(self):
        v = ss.evaluate(series(noise(1, 100), threads_at=lambda t: 40 + (4 if t > 500 else 0)), warmup_s=120)
        self.assertTrue(v.ok, v.failures)

    def test_fd_leak_fails(self):
        v = ss.evaluate(series(noise(2, 100), fds_at=lambda t: 30 + int(t // 30)), warmup_s=120)
        self.assertFalse(v.ok)
        self.assertTrue(any("open fds grew" in f for f in v.failures))

    def test_fds_high_during_warmup_only_pass(self):
        v = ss.evaluate(series(noise(3, 100), fds_at=lambda t: 80 if t < 100 else 30), warmup_s=120)
        self.assertTrue(v.ok, v.failures)

    def test_too_few_samples_is_an_error(self):
        with self.assertRaises(ValueError):
            ss.evaluate(series(noise(0, 10))[:15], warmup_s=10)
        with self.assertRaises(ValueError):  # nothing after the warm-up
            ss.evaluate(series(noise(0, 10)), warmup_s=10_000)


class CliTest(unittest.TestCase):
    def run_cli(self, samples, *args):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("t_s,rss_kib,threads,fds,cycles\n")
            for s in samples:
                f.write(f"{s.t_s},{s.rss_kib:.0f},{s.threads},{s.fds},{s.cycles}\n")
        try:
            return subprocess.run([sys.executable, ss.__file__, f.name, *args],
                                  capture_output=True, text=True)
        finally:
            os.unlink(f.name)

    def test_exit_codes_and_table(self):
        ok = self.run_cli(series(noise(0, 200)), "--warmup-seconds", "120")
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("RSS slope, last half", ok.stdout)
        leak = self.run_cli(series(lambda t: 30000 + 4096 * t / 60), "--warmup-seconds", "120")
        self.assertEqual(leak.returncode, 1)
        self.assertIn("FAIL: RSS still grows over the last half: +4096.0 KiB/min", leak.stdout)
        short = self.run_cli(series(noise(0, 1))[:4])
        self.assertEqual(short.returncode, 2)


if __name__ == "__main__":
    unittest.main()
