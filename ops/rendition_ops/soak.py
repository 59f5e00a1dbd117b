"""Soak run: N renders through ONE `rendition worker --queue rabbitmq` at its normal
concurrency (production settings: concurrency 2, jemalloc preloaded with the images' MALLOC_CONF
(--allocator glibc: glibc malloc), MALLOC_ARENA_MAX=2, JSON logs, the
repo's rendition.toml presets), on RabbitMQ (127.0.0.1:5672, random queue names, deleted
at the end) and a moto S3 server of its own, loopback only, bounded in time.

Sources: distinct synthetic JPEG / PNG / WebP photos, uploaded under N distinct keys (each
key is a new source version, so every one is a real render), fed through MinIO-shaped
events with a bounded backlog. Every second the worker's VmRSS, VmHWM, thread count and
open fds (/proc/PID) are sampled together with its completed jobs (/metrics:
rendition_jobs_total rendered + already_done). The samples taken while the first 100 jobs
ran are compared with those of the last 100. Job j renders image j % 100 (under its own
key), so both windows render the same images. Fails if the median RSS of the last window
exceeds the first's by more than 10 %, or if the median fd or thread count of the last
window exceeds the largest count seen in the first (a leak grows with jobs; the runtime's
blocking pool settling at its working size during the first jobs is not growth).

The worker inherits the environment (less RENDITION__*), so allocator settings can be
tried without code changes, e.g. MALLOC_MMAP_THRESHOLD_=131072 scripts/soak.sh.

Usage: scripts/soak.sh [N]        (builds, starts services, runs this)
       PYTHONPATH=ops python3 -m rendition_ops.soak --bin target/debug/rendition [--renders N] [--deadline-min M]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rendition_ops import common as oc

# What infra/aws/Dockerfile sets in the worker and Lambda images.
JEMALLOC_CONF = "narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"


def jemalloc_env() -> dict:
    """LD_PRELOAD + MALLOC_CONF for Debian's libjemalloc2 (scripts/soak.sh installs it)."""
    import glob
    libs = sorted(glob.glob("/usr/lib/*-linux-gnu/libjemalloc.so.2"))
    if not libs:
        sys.exit("soak: libjemalloc.so.2 not found (apt-get install libjemalloc2), or use --allocator glibc")
    return {"LD_PRELOAD": libs[0], "MALLOC_CONF": JEMALLOC_CONF}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--renders", type=int, default=2000, help="sources to render (default 2000)")
    p.add_argument("--window", type=int, default=100, help="jobs per compared window (default 100)")
    p.add_argument("--distinct", type=int, default=100,
                   help="distinct images, job j renders image j %% distinct under a new key (default 100: with N a "
                        "multiple of it, the first and last windows render the same images)")
    p.add_argument("--backlog", type=int, default=40, help="events published ahead of completions (default 40)")
    p.add_argument("--config", default=str(oc.REPO / "rendition.toml"), help="worker config (default: the repo's rendition.toml)")
    p.add_argument("--min-side", type=int, default=1200, help="smallest source width (default 1200)")
    p.add_argument("--max-side", type=int, default=2400, help="largest source width (default 2400)")
    p.add_argument("--rss-tolerance", type=float, default=0.10, help="allowed RSS growth (default 0.10)")
    p.add_argument("--deadline-min", type=float, default=45.0, help="global deadline in minutes (default 45)")
    p.add_argument("--bin", help="the rendition binary (default target/{release,debug}/rendition)")
    p.add_argument("--allocator", choices=["jemalloc", "glibc"], default="jemalloc",
                   help="jemalloc (default): preload Debian's libjemalloc2 with the MALLOC_CONF of the "
                        "production images (infra/aws/Dockerfile); glibc: malloc as linked, MALLOC_ARENA_MAX=2 only")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rundir", help="logs folder (default target/soak/<run id>)")
    return p.parse_args()


def _gen(args):
    i, seed, lo, hi = args
    rnd = random.Random(f"{seed}-{i}")
    roll = rnd.random()
    fmt, ext = ("jpeg", "jpg") if roll < 0.8 else (("png", "png") if roll < 0.95 else ("webp", "webp"))
    w = rnd.randrange(lo, hi + 1)
    h = min(2000, int(w * rnd.choice((0.5625, 0.667, 0.75, 1.0, 1.333))))
    return fmt, ext, oc.make_image(rnd.getrandbits(32), fmt, w, h, quality=rnd.randrange(75, 93),
                                   progressive=fmt == "jpeg" and rnd.random() < 0.3)


@dataclass
class Verdict:
    """The soak's rules applied to its samples (see the module doc)."""

    first: list[dict]  # samples taken while the first `window` jobs ran
    last: list[dict]  # ... and while the last `window` ran
    rss_first: float  # MiB, medians
    rss_last: float
    ratio: float
    fds_first: float
    fds_last: float
    fds_max: int  # the largest count seen in the first window
    threads_first: float
    threads_last: float
    threads_max: int
    hwm_mib: float
    secs_per_job: float
    checks: dict[str, bool]


def verdict(samples: list[dict], renders: int, window: int, rss_tolerance: float, done: float,
            exit_code: int | None) -> Verdict:
    """Compares the samples of the first `window` jobs with those of the last: RSS may grow by
    `rss_tolerance` at most, fds and threads not beyond the first window's largest count.
    Each sample holds `jobs` (completed so far), `t`, `VmRSS` and `VmHWM` (KiB), `fds` and
    `threads`. Raises when either window has no sample (nothing to compare is no verdict)."""
    n, w = renders, window
    # While the first / last `w` jobs ran: after the first completion up to job w, and
    # from job n - w until the last completes.
    first = [s for s in samples if 0 < s["jobs"] <= w]
    last = [s for s in samples if n - w <= s["jobs"] < n]
    if not first or not last:
        raise RuntimeError(f"not enough samples (first {len(first)}, last {len(last)}; done {done}/{n})")

    def med(ss: list[dict], k: str) -> float:
        return oc.median([x[k] for x in ss])

    rss1, rss2 = med(first, "VmRSS") / 1024, med(last, "VmRSS") / 1024
    fd2, th2 = med(last, "fds"), med(last, "threads")
    fd1max, th1max = max(x["fds"] for x in first), max(x["threads"] for x in first)
    ratio = rss2 / rss1
    return Verdict(
        first=first, last=last, rss_first=rss1, rss_last=rss2, ratio=ratio,
        fds_first=med(first, "fds"), fds_last=fd2, fds_max=fd1max,
        threads_first=med(first, "threads"), threads_last=th2, threads_max=th1max,
        hwm_mib=max(s["VmHWM"] for s in samples) / 1024,
        secs_per_job=(last[-1]["t"] - first[0]["t"]) / max(1, last[-1]["jobs"] - first[0]["jobs"]),
        checks={
            f"RSS within {rss_tolerance:.0%}": ratio <= 1 + rss_tolerance,
            "fds flat": fd2 <= fd1max,
            "threads flat": th2 <= th1max,
            "all renders done": done >= n,
            "worker exits 0 on SIGTERM": exit_code == 0,
        },
    )


def main():
    args = parse_args()
    oc.ensure_venv()
    import pika

    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    rundir = Path(args.rundir) if args.rundir else oc.REPO / "target" / "soak" / run_id
    logdir = rundir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    binary = oc.pin_binary(oc.find_binary(args.bin).resolve(), rundir)
    t0 = time.monotonic()
    deadline = t0 + args.deadline_min * 60
    log = lambda m: oc.log("soak", m)  # noqa: E731

    t = time.monotonic()
    with cf.ProcessPoolExecutor(2) as pool:
        images = list(pool.map(_gen, [(i, args.seed, args.min_side, args.max_side) for i in range(args.distinct)]))
    log(f"{len(images)} distinct sources ({sum(len(d) for *_, d in images) / 1e6:.1f} MB) in {time.monotonic() - t:.0f} s")

    prefix = f"rendition-soak-{uuid.uuid4().hex[:10]}"
    names = {"queue": f"{prefix}.jobs", "uploads": f"{prefix}.uploads", "events": f"{prefix}.events"}
    queues = [names["queue"], f"{prefix}.jobs.dlq", *[f"{prefix}.jobs.retry.{n}" for n in range(1, 5)]]
    bucket = f"{prefix}-bucket"
    moto = oc.Moto(logdir / "moto.log")
    worker = None
    ok = False
    samples: list[dict] = []
    try:
        s3, _ = oc.boto_clients(moto.endpoint)
        s3.create_bucket(Bucket=bucket)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RENDITION__")}
        env.update(oc.AWS_ENV)
        if args.allocator == "jemalloc":
            env.update(jemalloc_env())
        env.update({"MALLOC_ARENA_MAX": "2", "RENDITION__LOG__FORMAT": "json"})
        env.update(oc.rabbit_worker_env(bucket, moto.endpoint, names, 2))
        worker = oc.Worker("worker", binary, ["--config", args.config, "worker", "--queue", "rabbitmq"], env, logdir)
        worker.start()
        if not worker.wait_log(lambda e: e.get("message") == "consuming", 60):
            raise RuntimeError(f"the worker did not start consuming (see {worker.logs[-1]})")

        params = pika.ConnectionParameters("127.0.0.1", 5672, "/", pika.PlainCredentials("guest", "guest"), heartbeat=30)
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")

        done = 0.0
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                started = time.monotonic()
                s = oc.proc_sample(worker.pid)
                m = worker.metrics()
                if s is not None and m:
                    s.update(t=round(started - t0, 2), jobs=oc.jobs_completed(m),
                             in_flight=m.get("rendition_in_flight", 0),
                             failed=m.get('rendition_jobs_total{outcome="dead_lettered"}', 0)
                             + m.get('rendition_jobs_total{outcome="retry"}', 0))
                    samples.append(s)
                stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        published = 0
        last = 0.0
        while time.monotonic() < deadline:
            done = samples[-1]["jobs"] if samples else 0
            while published < args.renders and published - done < args.backlog:
                _, ext, data = images[published % len(images)]
                key = f"originals/soak/{published // 100:03d}/src-{published:05d}.{ext}"
                put = s3.put_object(Bucket=bucket, Key=key, Body=data)
                ch.basic_publish(names["uploads"], "originals", oc.minio_event(bucket, key, len(data), put["ETag"].strip('"')),
                                 props, mandatory=True)
                published += 1
            if done >= args.renders:
                break
            failed = samples[-1]["failed"] if samples else 0
            if failed:
                raise RuntimeError(f"{failed} jobs failed (retry or dead-letter); see {worker.logs[-1]}")
            if not worker.alive():
                raise RuntimeError(f"the worker exited with {worker.proc.returncode}; see {worker.logs[-1]}")
            if time.monotonic() - last > 30:
                last = time.monotonic()
                s = samples[-1] if samples else {}
                log(f"{int(done)}/{args.renders} done, RSS {s.get('VmRSS', 0) / 1024:.0f} MiB, "
                    f"fds {s.get('fds')}, threads {s.get('threads')}")
            conn.process_data_events(0.5)
        stop.set()
        th.join()
        wall = time.monotonic() - t0
        code = worker.terminate(60)
        conn.close()

        n, w = args.renders, args.window
        (rundir / "samples.json").write_text(json.dumps(samples))
        v = verdict(samples, n, w, args.rss_tolerance, done, code)
        failed = [name for name, held in v.checks.items() if not held]
        alloc = " ".join(f"{k}={val}" for k, val in sorted(env.items()) if k.startswith("MALLOC_") or k == "LD_PRELOAD")
        print("soak: ---------------------------------------------------------------")
        print(f"soak: renders               {int(done)}/{n} through one rabbitmq worker, concurrency 2, "
              f"{alloc}, "
              f"presets of {Path(args.config).name}; {len(images)} distinct sources "
              f"{args.min_side}-{args.max_side} px wide")
        print(f"soak: samples               {len(samples)} (1/s); first {w} jobs: {len(v.first)}, last {w} jobs: {len(v.last)}")
        print(f"soak: RSS median            first {v.rss_first:.1f} MiB, last {v.rss_last:.1f} MiB, ratio {v.ratio:.3f} "
              f"(peak VmHWM {v.first[-1]['VmHWM'] / 1024:.1f} MiB after the first {w} jobs, {v.hwm_mib:.1f} MiB at the end)")
        print(f"soak: fds median            first {v.fds_first:g}, last {v.fds_last:g} (first-window max {v.fds_max}, "
              f"overall max {max(s['fds'] for s in samples)})")
        print(f"soak: threads median        first {v.threads_first:g}, last {v.threads_last:g} (first-window max "
              f"{v.threads_max}, "
              f"overall max {max(s['threads'] for s in samples)})")
        buckets = []
        step = max(1, n // 10)
        for lo in range(0, n, step):
            ss = [x["VmRSS"] for x in samples if lo < x["jobs"] <= lo + step]
            if ss:
                buckets.append(f"{lo + step}:{oc.median(ss) / 1024:.0f}")
        mid_lo = max(w, n // 5)
        mid = [x["VmRSS"] for x in samples if mid_lo < x["jobs"] <= mid_lo + w]
        if mid:
            print(f"soak: RSS after warm-up     jobs {mid_lo + 1}-{mid_lo + w}: {oc.median(mid) / 1024:.1f} MiB, "
                  f"last {w}: {v.rss_last:.1f} MiB, ratio {v.rss_last * 1024 / oc.median(mid):.3f} (informational)")
        print(f"soak: RSS trend (MiB)       median per {step} jobs: {' '.join(buckets)}")
        print(f"soak: throughput            {1 / v.secs_per_job:.2f} jobs/s ({v.secs_per_job * 1000:.0f} ms/job wall)")
        print(f"soak: worker exit (SIGTERM) {code}")
        print(f"soak: wall                  {wall:.0f} s; samples {rundir / 'samples.json'}, log {worker.logs[-1]}")
        print(f"soak: result                {'PASS' if not failed else 'FAIL: ' + '; '.join(failed)}")
        ok = not failed
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print(f"soak: ERROR {e!r}")
        print("soak: result FAIL")
    finally:
        if worker and worker.alive():
            worker.terminate(30)
        try:
            conn2 = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672, "/",
                                                                      pika.PlainCredentials("guest", "guest")))
            ch2 = conn2.channel()
            for q in queues:
                ch2.queue_delete(q)
            for x in (names["uploads"], names["events"]):
                ch2.exchange_delete(x)
            conn2.close()
        except Exception as e:  # noqa: BLE001
            log(f"RabbitMQ cleanup: {e!r}")
        moto.stop()
        (rundir / "rendition").unlink(missing_ok=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
