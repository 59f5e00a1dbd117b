"""The soak's verdict (rendition_ops.soak.verdict): RSS growth beyond the tolerance, fds or
threads above the first window's largest count, unfinished renders or a bad exit fail it."""

from __future__ import annotations

import pytest

from rendition_ops.soak import verdict


def samples(n: int, rss=lambda j: 100 * 1024, fds=lambda j: 11, threads=lambda j: 15) -> list[dict]:
    """One sample per completed job j (1..n), as the soak's sampler records them."""
    return [{"t": j * 0.5, "jobs": j, "VmRSS": rss(j), "VmHWM": 150 * 1024, "fds": fds(j), "threads": threads(j)}
            for j in range(1, n + 1)]


def failed(v) -> set[str]:
    return {name for name, held in v.checks.items() if not held}


def test_flat_memory_fds_and_threads_pass():
    v = verdict(samples(2000), 2000, 100, 0.10, 2000, 0)
    assert failed(v) == set()
    assert (v.rss_first, v.rss_last, v.ratio) == (100.0, 100.0, 1.0)
    assert v.secs_per_job == pytest.approx(0.5)


@pytest.mark.parametrize(("growth", "passes"), [(1.05, True), (1.10, True), (1.11, False), (1.30, False)])
def test_rss_may_grow_by_the_tolerance_only(growth, passes):
    s = samples(2000, rss=lambda j: 100 * 1024 * (growth if j > 1000 else 1))
    v = verdict(s, 2000, 100, 0.10, 2000, 0)
    assert failed(v) == (set() if passes else {"RSS within 10%"})
    assert v.ratio == pytest.approx(growth)


def test_a_leak_of_fds_fails():
    v = verdict(samples(2000, fds=lambda j: 11 + j // 100), 2000, 100, 0.10, 2000, 0)
    assert failed(v) == {"fds flat"}


def test_threads_settling_in_the_first_window_is_not_growth():
    # The runtime's blocking pool grows to its working size during the first jobs.
    v = verdict(samples(2000, threads=lambda j: 12 if j < 50 else 16), 2000, 100, 0.10, 2000, 0)
    assert failed(v) == set()
    v = verdict(samples(2000, threads=lambda j: 12 if j < 1900 else 17), 2000, 100, 0.10, 2000, 0)
    assert failed(v) == {"threads flat"}


def test_unfinished_renders_and_a_bad_exit_fail():
    assert failed(verdict(samples(2000), 2000, 100, 0.10, 1999, 0)) == {"all renders done"}
    assert failed(verdict(samples(2000), 2000, 100, 0.10, 2000, None)) == {"worker exits 0 on SIGTERM"}
    assert failed(verdict(samples(2000), 2000, 100, 0.10, 2000, 1)) == {"worker exits 0 on SIGTERM"}


def test_no_samples_in_a_window_is_no_verdict():
    with pytest.raises(RuntimeError, match="not enough samples"):
        verdict(samples(500), 2000, 100, 0.10, 500, 0)
    with pytest.raises(RuntimeError, match="not enough samples"):
        verdict([], 2000, 100, 0.10, 2000, 0)
