"""The worker end to end against the raw render rate, at the same parallelism.

For each source format (JPEG, then PNG): N uploads (default 100) made of the real photos of
scripts/fetch-photos.sh, each photo under several distinct keys
(originals/e2e/kNN/<photo>), rendered with the repo's rendition.toml presets (5 eager WebP
widths) at RENDITION__RENDER__CONCURRENCY=2 with the production allocator (jemalloc
preloaded with the images' MALLOC_CONF, as rendition_ops.soak does by default).

- raw: `rendition run --local DIR --once` over the same N files under DIR/originals/ (same
  key layout), no queue, no S3; timed from process start to exit. DIR is on /dev/shm by
  default (tmpfs: the folder store's fsyncs cost nothing there, so this is the render
  alone, not the disk; --raw-parent '' puts it in the run folder). Also reported: the time
  to its "local mode started" line (start-up: config, libvips, listing) and to its first
  "rendered" line.
- e2e: one `rendition worker --queue rabbitmq` (RabbitMQ on 127.0.0.1:5672, random queue
  and exchange names, deleted afterwards; a fresh bucket on a moto server of our own).
  The N sources are uploaded first (untimed), the worker is started and consuming, then a
  MinIO-shaped event per upload is published at once (a backlog of N). Timed from the
  first publish until the worker's N-th `derivatives.ready` event arrives on a queue bound
  to the events exchange (published after the manifest is written); then every source's
  manifest and the derivatives it lists are checked in S3 (rendition_ops.verify).

Both sides run in a session of their own (with the kernel's scheduler autogroups, a
session is one scheduling group: a raw run left in the caller's session competed with
whatever else ran there and measured ~30 % slower on a loaded machine). The per-job split
(render_ms of the "rendered" lines; the worker's rendition_job_seconds) shows the
storage time per job that a loaded machine hides and an idle one shows as idle cores.

The two alternate (raw, e2e, raw, e2e, ...; --reps each) and the medians are compared:
target e2e / raw >= 0.9.

--scale-out instead measures scaling out on one queue: N jobs (default 200, JPEGs) through
RabbitMQ + S3 (moto) with 1 worker process at concurrency 1, 1 worker at concurrency 2, and
2 worker processes at concurrency 1 each (each worker's prefetch is its concurrency), run
after run (--reps each, alternating), from one upload of the sources (the derived/ prefix is
cleared before each run). Reported: jobs/s of each and two ratios of medians:
  scale-out    2 workers (c=1 each) / 1 worker (c=1): the same budget per worker, twice the
               workers (target >= 1.85; on 2 cores each worker gets one);
  same budget  2 workers (c=1 each) / 1 worker (c=2): the same total concurrency, split
               across processes (no target; about 1 when nothing but the CPU limits).

CPU seconds of the workers (with their render helpers), of moto and of RabbitMQ (beam.smp)
during each e2e run are reported too: on this machine moto and RabbitMQ share the two
cores with the worker, which a real S3 does not. Exit 0 whatever the ratio (it is a
measurement); non-zero only on errors (a failed render, missing manifests, a worker crash,
a timeout).

Usage: scripts/e2e-bench.sh [N] [options]   (builds, starts services, runs this)
       scripts/e2e-bench.sh 200 --scale-out
       PYTHONPATH=ops python3 -m rendition_ops.e2e_bench --bin target/release/rendition [--renders N] [--formats jpeg]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from rendition_ops import common as oc
from rendition_ops import verify
from rendition_ops.soak import jemalloc_env  # the production allocator settings

CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--renders", type=int, help="uploads per format (default 100; 200 with --scale-out)")
    p.add_argument("--formats", help="comma-separated: jpeg, png (default jpeg,png; jpeg with --scale-out)")
    p.add_argument("--scale-out", action="store_true",
                   help="measure 1 worker (c=1), 1 worker (c=2) and 2 workers (c=1 each) on one queue instead")
    p.add_argument("--reps", type=int, default=2, help="runs of each side, alternating (default 2)")
    p.add_argument("--concurrency", type=int, default=2, help="RENDITION__RENDER__CONCURRENCY (default 2)")
    p.add_argument("--photos", help="folder of photos (default: the last line of scripts/fetch-photos.sh)")
    p.add_argument("--config", default=str(oc.REPO / "rendition.toml"), help="config (default: the repo's rendition.toml)")
    p.add_argument("--allocator", choices=["jemalloc", "glibc"], default="jemalloc",
                   help="jemalloc (default; as the production images) or glibc (MALLOC_ARENA_MAX=2 only)")
    p.add_argument("--run-timeout", type=float, default=600.0, help="seconds allowed per timed run (default 600)")
    p.add_argument("--bin", help="the rendition binary (default target/{release,debug}/rendition)")
    p.add_argument("--rundir", help="logs folder (default target/e2e-bench/<run id>)")
    p.add_argument("--raw-parent", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                   help="where the raw side's folder bucket goes (default /dev/shm: tmpfs, so its fsyncs cost "
                        "nothing and the raw side is the render alone; '' for the run folder on disk)")
    p.add_argument("--keep", action="store_true", help="keep the raw side's folder bucket afterwards")
    args = p.parse_args()
    if args.renders is None:
        args.renders = 200 if args.scale_out else 100
    if args.formats is None:
        args.formats = "jpeg" if args.scale_out else "jpeg,png"
    return args


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_secs(pid: int | None) -> float | None:
    """utime + stime of a live process, in seconds."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_secs(pid: int) -> float | None:
    """CPU seconds of a live process and its descendants: its own utime + stime, its
    reaped children's (cutime + cstime), and recursively its live children's (a worker's
    render helpers are its children, alive for the whole run)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                    for c in (t / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return None
    total = sum(int(f) for f in fields[11:15]) / CLK_TCK
    return total + sum(tree_cpu_secs(c) or 0.0 for c in children)


def rabbit_pid() -> int | None:
    """The RabbitMQ node's beam.smp (for its CPU time): the one booting `rabbit` (rabbitmqctl
    runs a beam.smp of its own), if there is exactly one."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() != "beam.smp":
                    continue
                if b"rabbit boot" in (d / "cmdline").read_bytes().replace(b"\0", b" "):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids[0] if len(pids) == 1 else None


def photos_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    out = subprocess.run([str(oc.REPO / "scripts" / "fetch-photos.sh")], check=True,
                         stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    return Path(out.stdout.strip().splitlines()[-1])


def layout(photos: list[Path], n: int) -> list[tuple[str, Path]]:
    """(key, file) for N uploads: every photo under originals/e2e/kNN/, in key order."""
    rounds = math.ceil(n / len(photos))
    items = [(f"originals/e2e/k{k:02d}/{p.name}", p) for k in range(rounds) for p in photos]
    return sorted(items[:n])


def base_env(args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENDITION__")}
    env.update(oc.AWS_ENV)
    if args.allocator == "jemalloc":
        env.update(jemalloc_env())
    env.update({
        "MALLOC_ARENA_MAX": "2",
        "RENDITION__LOG__FORMAT": "json",
        "RENDITION__RENDER__CONCURRENCY": str(args.concurrency),
    })
    return env


# ------------------------------------------------------------------ raw side


def raw_run(args, binary: Path, env: dict, bucket_dir: Path, n: int, logpath: Path) -> dict:
    """`rendition run --local DIR --once`, timed from start to exit."""
    for sub in ("derived", "failed"):
        shutil.rmtree(bucket_dir / sub, ignore_errors=True)
    load = loadavg()
    marks: dict[str, float] = {}
    render_ms: list[float] = []
    written = 0
    with open(logpath, "wb") as logf:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(binary), "--config", args.config, "run", "--local", str(bucket_dir), "--once"],
            env=env, cwd=bucket_dir.parent, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Its own session, as the worker's (common.Worker): with the kernel's scheduler
            # autogroups (sched_autogroup_enabled) each session is one scheduling group, so
            # both sides get the same share of a loaded machine.
            start_new_session=True,
        )
        stdout_chunks: list[bytes] = []
        out_thread = threading.Thread(target=lambda: stdout_chunks.append(proc.stdout.read()), daemon=True)
        out_thread.start()
        timer = threading.Timer(args.run_timeout, proc.kill)
        timer.start()
        for line in proc.stderr:
            now = time.monotonic() - t0
            logf.write(line)
            try:
                msg = json.loads(line).get("message", "")
            except ValueError:
                continue
            if msg == "local mode started":
                marks.setdefault("started", now)
            elif msg == "rendered":
                marks.setdefault("first", now)
                render_ms.append(float(json.loads(line).get("render_ms", 0)))
            elif msg == "derivatives written":
                written += 1
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        timer.cancel()
        out_thread.join(5)
    manifests = len(list((bucket_dir / "derived").rglob("manifest.json")))
    if proc.returncode != 0 or written != n or manifests != n:
        raise RuntimeError(f"raw run: exit {proc.returncode}, {written} written, {manifests}/{n} manifests "
                           f"(see {logpath}; stdout {b''.join(stdout_chunks)!r})")
    return {"wall": wall, "rate": n / wall, "dir": str(bucket_dir), "started": marks.get("started"), "first": marks.get("first"),
            "render_ms": sum(render_ms) / max(1, len(render_ms)),
            "cpu": ru.ru_utime + ru.ru_stime, "maxrss_mib": ru.ru_maxrss / 1024, "load": load,
            "load_after": loadavg()}


# ------------------------------------------------------------------ e2e side


def upload(s3, bucket: str, items: list[tuple[str, Path]], tag: str) -> dict[str, tuple[int, str]]:
    """PUTs every source; {key: (size, etag)}."""
    t = time.monotonic()
    etags = {}
    for key, path in items:
        body = path.read_bytes()
        etags[key] = (len(body), s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"'))
    oc.log("e2e", f"{tag}: {len(items)} uploads ({sum(s for s, _ in etags.values()) / 1e6:.0f} MB) in "
                  f"{time.monotonic() - t:.1f} s")
    return etags


def e2e_run(args, binary: Path, env: dict, moto: oc.Moto, items: list[tuple[str, Path]], logdir: Path,
            tag: str, workers: int = 1, concurrency: int | None = None,
            uploaded: tuple[str, dict] | None = None) -> dict:
    """`workers` worker processes at `concurrency` (default --concurrency) on one queue.
    With `uploaded` (bucket, etags) the sources are already there: derived/ is cleared and
    the bucket kept; otherwise a fresh bucket is made, filled and deleted afterwards."""
    import pika

    n = len(items)
    concurrency = concurrency or args.concurrency
    s3, _ = oc.boto_clients(moto.endpoint)
    prefix = f"rendition-e2e-{uuid.uuid4().hex[:10]}"
    names = {"queue": f"{prefix}.jobs", "uploads": f"{prefix}.uploads", "events": f"{prefix}.events"}
    ready_q = f"{prefix}.ready"
    queues = [names["queue"], f"{prefix}.jobs.dlq", ready_q, *[f"{prefix}.jobs.retry.{i}" for i in range(1, 8)]]
    if uploaded:
        bucket, etags = uploaded
        old = [o["Key"] for o in oc.list_keys(s3, bucket, "derived/")]
        for i in range(0, len(old), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in old[i:i + 1000]]})
    else:
        bucket = f"{prefix}-bucket"
        s3.create_bucket(Bucket=bucket)
    fleet: list[oc.Worker] = []
    conn = None
    try:
        if not uploaded:
            etags = upload(s3, bucket, items, tag)
        wenv = dict(env)
        wenv.update(oc.rabbit_worker_env(bucket, moto.endpoint, names, concurrency))
        for i in range(workers):
            name = f"worker-{tag}" if workers == 1 else f"worker-{tag}-{i + 1}"
            fleet.append(oc.Worker(name, binary, ["--config", args.config, "worker", "--queue", "rabbitmq"],
                                   wenv, logdir))
        for worker in fleet:
            worker.start()
        for worker in fleet:
            if not worker.wait_log(lambda e: e.get("message") == "consuming", 60):
                raise RuntimeError(f"the worker did not start consuming (see {worker.logs[-1]})")
        params = pika.ConnectionParameters("127.0.0.1", 5672, "/", pika.PlainCredentials("guest", "guest"),
                                           heartbeat=60)
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.exchange_declare(names["events"], "topic", durable=True)  # as the worker declared it
        ch.queue_declare(ready_q, auto_delete=False, exclusive=True)
        ch.queue_bind(ready_q, names["events"], "#")
        ready: dict[str, float] = {}
        t0 = 0.0

        def on_ready(_ch, _method, _props, body):
            now = time.monotonic()
            try:
                # A CloudEvent whose `data` is the manifest (the README's "Outcome events").
                key = json.loads(body)["data"]["source"]["key"]
            except (ValueError, KeyError, TypeError):
                key = f"?{len(ready)}"
            ready.setdefault(key, now - t0)

        ch.basic_consume(ready_q, on_ready, auto_ack=True)
        ch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        rpid = rabbit_pid()
        time.sleep(0.5)  # let the workers settle after their start-up

        def fleet_cpu() -> float | None:
            c = [tree_cpu_secs(w.pid) for w in fleet]
            return None if None in c else sum(c)

        load = loadavg()
        cpu0 = {"worker": fleet_cpu(), "moto": cpu_secs(moto.proc.pid), "rabbit": cpu_secs(rpid)}
        t0 = time.monotonic()
        for key, _ in items:
            size, etag = etags[key]
            ch.basic_publish(names["uploads"], "originals", oc.minio_event(bucket, key, size, etag), props,
                             mandatory=True)
        t_published = time.monotonic() - t0
        deadline = t0 + args.run_timeout
        next_check = 0.0
        while len(ready) < n:
            conn.process_data_events(0.05)
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"timed out: {len(ready)}/{n} ready after {args.run_timeout:.0f} s "
                                   f"(see {fleet[0].logs[-1]})")
            if now >= next_check:
                next_check = now + 1.0
                for worker in fleet:
                    if not worker.alive():
                        raise RuntimeError(f"the worker exited with {worker.proc.returncode}; "
                                           f"see {worker.logs[-1]}")
                    dead = worker.metrics().get('rendition_jobs_total{outcome="dead_lettered"}', 0)
                    if dead:
                        raise RuntimeError(f"{dead:g} jobs dead-lettered; see {worker.logs[-1]}")
        wall = max(ready.values())
        cpu1 = {"worker": fleet_cpu(), "moto": cpu_secs(moto.proc.pid), "rabbit": cpu_secs(rpid)}
        load_after = loadavg()
        metrics = [w.metrics() for w in fleet]
        hwm = [(oc.proc_sample(w.pid) or {}).get("VmHWM", 0) / 1024 for w in fleet]
        codes = [w.terminate(60) for w in fleet]
        renders = [float(e.get("render_ms", 0)) for w in fleet for e in oc.read_log(w.logs[-1])
                   if e.get("message") == "rendered"]
        job_count = sum(m.get("rendition_job_seconds_count", 0) for m in metrics)
        job_ms = (sum(m.get("rendition_job_seconds_sum", 0) for m in metrics) * 1000 / job_count
                  if job_count else float("nan"))
        # Untimed: every source has its manifest and every derivative it lists (found through
        # the manifests, never by a hand-built name), and nothing else is stored.
        storage = verify.verify_bucket(s3, bucket, [verify.Upload(k) for k, _ in items],
                                       verify.eager_presets(Path(args.config)))
        missing = sorted({k for k, _ in items} - set(ready))
        if storage.problems or storage.manifests != n or missing:
            raise RuntimeError(f"{storage.manifests}/{n} manifests in S3, {len(missing)} sources without a ready "
                               f"event (e.g. {missing[:3]}); storage: {storage.problems[:5]}")
        for worker, code in zip(fleet, codes, strict=True):
            if code != 0:
                raise RuntimeError(f"the worker exited with {code} on SIGTERM; see {worker.logs[-1]}")
        cpu = {k: (cpu1[k] - cpu0[k]) if cpu0[k] is not None and cpu1[k] is not None else None for k in cpu0}
        rendered = [m.get('rendition_jobs_total{outcome="rendered"}', 0) for m in metrics]
        return {"wall": wall, "rate": n / wall, "first": min(ready.values()), "published": t_published,
                "workers": workers, "concurrency": concurrency,
                "cpu": cpu, "load": load, "load_after": load_after, "hwm_mib": max(hwm), "hwm_mib_each": hwm,
                "rendered": sum(rendered), "rendered_each": rendered,
                "retries": sum(m.get('rendition_jobs_total{outcome="retry"}', 0) for m in metrics),
                "job_ms": job_ms, "render_ms": sum(renders) / max(1, len(renders)),
                "log": str(fleet[0].logs[-1])}
    finally:
        for worker in fleet:
            if worker.alive():
                worker.terminate(30)
        try:
            if conn is None or conn.is_closed:
                conn = pika.BlockingConnection(pika.ConnectionParameters(
                    "127.0.0.1", 5672, "/", pika.PlainCredentials("guest", "guest")))
            ch2 = conn.channel()
            for q in queues:
                ch2.queue_delete(q)
            for x in (names["uploads"], names["events"]):
                ch2.exchange_delete(x)
            conn.close()
        except Exception as e:  # noqa: BLE001
            oc.log("e2e", f"RabbitMQ cleanup: {e!r}")
        if not uploaded:
            try:
                oc.delete_bucket(s3, bucket)
            except Exception as e:  # noqa: BLE001
                oc.log("e2e", f"bucket cleanup: {e!r}")


# ------------------------------------------------------------------ scale-out

# (label, worker processes, concurrency of each)
FLEETS = [("1 worker, c=1", 1, 1), ("1 worker, c=2", 1, 2), ("2 workers, c=1 each", 2, 1)]
SCALE_OUT_TARGET = 1.85


def scale_out(args, binary: Path, env: dict, moto: oc.Moto, items: list[tuple[str, Path]], logdir: Path,
              fmt: str, lines: list[str]) -> dict:
    """The FLEETS on the same uploads, alternating, --reps runs each; medians and ratios."""
    n = len(items)
    s3, _ = oc.boto_clients(moto.endpoint)
    bucket = f"rendition-e2e-{uuid.uuid4().hex[:10]}-scale"
    s3.create_bucket(Bucket=bucket)
    try:
        etags = upload(s3, bucket, items, f"{fmt} scale-out")
        runs: dict[str, list[dict]] = {label: [] for label, _, _ in FLEETS}
        for rep in range(1, args.reps + 1):
            for label, workers, concurrency in FLEETS:
                tag = f"{fmt}-w{workers}c{concurrency}-{rep}"
                e = e2e_run(args, binary, env, moto, items, logdir, tag, workers, concurrency, (bucket, etags))
                runs[label].append(e)
                c = e["cpu"]
                line = (f"e2e: {fmt} scale-out {label:19s} rep {rep}  {e['wall']:6.1f} s  {e['rate']:.2f} jobs/s  "
                        f"jobs per worker {'/'.join(f'{r:g}' for r in e['rendered_each'])}, job {e['job_ms']:.0f} ms "
                        f"of which render {e['render_ms']:.0f}, CPU workers {fmt_cpu(c['worker'], n)}, "
                        f"moto {fmt_cpu(c['moto'], n)}, rabbitmq {fmt_cpu(c['rabbit'], n)}, "
                        f"VmHWM {'/'.join(f'{h:.0f}' for h in e['hwm_mib_each'])} MiB  "
                        f"load {e['load']} -> {e['load_after']}")
                print(line, flush=True)
                lines.append(line)
    finally:
        try:
            oc.delete_bucket(s3, bucket)
        except Exception as e:  # noqa: BLE001
            oc.log("e2e", f"bucket cleanup: {e!r}")
    rate = {label: oc.median([r["rate"] for r in rs]) for label, rs in runs.items()}
    cpu = {label: oc.median([r["cpu"]["worker"] for r in rs if r["cpu"]["worker"] is not None]) / n
           for label, rs in runs.items()}
    one, one_c2, two = (label for label, _, _ in FLEETS)
    return {"n": n, "rates": rate, "worker_cpu_per_job": cpu,
            "scale_out": rate[two] / rate[one], "target": SCALE_OUT_TARGET,
            "met": rate[two] / rate[one] >= SCALE_OUT_TARGET,
            "same_budget": rate[two] / rate[one_c2],
            "loads": {label: [r["load"] for r in rs] for label, rs in runs.items()}, "runs": runs}


# ------------------------------------------------------------------ main


def fmt_cpu(c: float | None, n: int) -> str:
    return "n/a" if c is None else f"{c:.1f} s ({c * 1000 / n:.0f} ms/img)"


def main():
    args = parse_args()
    oc.ensure_venv()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    for f in formats:
        if f not in ("jpeg", "png"):
            sys.exit(f"e2e: unknown format {f!r} (jpeg, png)")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    rundir = Path(args.rundir) if args.rundir else oc.REPO / "target" / "e2e-bench" / run_id
    logdir = rundir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    binary = oc.pin_binary(oc.find_binary(args.bin).resolve(), rundir)
    photos = photos_dir(args.photos)
    env = base_env(args)
    raw_parent = Path(args.raw_parent) / f"rendition-e2e-{run_id}" if args.raw_parent else rundir
    moto = oc.Moto(logdir / "moto.log")
    lines: list[str] = []
    results: dict[str, dict] = {}
    ok = False
    t_start = time.monotonic()
    try:
        for fmt in formats:
            pattern = "jpeg-*.jpg" if fmt == "jpeg" else "png-*.png"
            files = sorted(photos.glob(pattern))
            if not files:
                raise RuntimeError(f"no {pattern} in {photos}")
            items = layout(files, args.renders)
            n = len(items)
            if args.scale_out:
                results[fmt] = scale_out(args, binary, env, moto, items, logdir, fmt, lines)
                results[fmt]["sources"] = len(files)
                continue
            # The raw side's folder bucket: the same keys, hard-linked (or copied).
            bucket_dir = raw_parent / f"raw-{fmt}"
            for key, path in items:
                dst = bucket_dir / key
                dst.parent.mkdir(parents=True, exist_ok=True)
                if not dst.exists():
                    try:
                        os.link(path, dst)
                    except OSError:
                        shutil.copy2(path, dst)
            raws, e2es = [], []
            for rep in range(1, args.reps + 1):
                r = raw_run(args, binary, env, bucket_dir, n, logdir / f"raw-{fmt}-{rep}.log")
                raws.append(r)
                line = (f"e2e: {fmt} raw rep {rep}   {r['wall']:6.1f} s  {r['rate']:.2f} img/s  started "
                        f"{r['started']:.2f} s, first rendered {r['first']:.2f} s, render {r['render_ms']:.0f} ms/job, "
                        f"CPU {fmt_cpu(r['cpu'], n)}, "
                        f"peak RSS {r['maxrss_mib']:.0f} MiB  load {r['load']} -> {r['load_after']}")
                print(line, flush=True)
                lines.append(line)
                e = e2e_run(args, binary, env, moto, items, logdir, f"{fmt}-{rep}")
                e2es.append(e)
                c = e["cpu"]
                line = (f"e2e: {fmt} e2e rep {rep}   {e['wall']:6.1f} s  {e['rate']:.2f} img/s  published "
                        f"{e['published']:.2f} s, first ready {e['first']:.2f} s, job {e['job_ms']:.0f} ms of which render "
                        f"{e['render_ms']:.0f}, CPU worker "
                        f"{fmt_cpu(c['worker'], n)}, moto {fmt_cpu(c['moto'], n)}, rabbitmq "
                        f"{fmt_cpu(c['rabbit'], n)}, worker VmHWM {e['hwm_mib']:.0f} MiB, retries "
                        f"{e['retries']:g}  load {e['load']} -> {e['load_after']}")
                print(line, flush=True)
                lines.append(line)
            if not args.keep:
                shutil.rmtree(bucket_dir, ignore_errors=True)
            raw_rate = oc.median([r["rate"] for r in raws])
            e2e_rate = oc.median([e["rate"] for e in e2es])
            results[fmt] = {
                "n": n, "sources": len(files), "raw": raw_rate, "e2e": e2e_rate, "ratio": e2e_rate / raw_rate,
                "raw_cpu": oc.median([r["cpu"] for r in raws]) / n,
                "worker_cpu": oc.median([e["cpu"]["worker"] for e in e2es if e["cpu"]["worker"] is not None]) / n,
                "moto_cpu": oc.median([e["cpu"]["moto"] for e in e2es if e["cpu"]["moto"] is not None]) / n,
                "rabbit_cpu": (oc.median([e["cpu"]["rabbit"] for e in e2es if e["cpu"]["rabbit"] is not None]) / n
                               if any(e["cpu"]["rabbit"] is not None for e in e2es) else float("nan")),
                "loads": [r["load"] for r in raws] + [e["load"] for e in e2es],
                "raw_render_ms": oc.median([r["render_ms"] for r in raws]),
                "job_ms": oc.median([e["job_ms"] for e in e2es]),
                "e2e_render_ms": oc.median([e["render_ms"] for e in e2es]),
                "first": oc.median([r["first"] for r in raws]), "started": oc.median([r["started"] for r in raws]),
                "raw_runs": raws, "e2e_runs": e2es,
            }
        ok = True
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print(f"e2e: ERROR {e!r}")
    finally:
        moto.stop()
        (rundir / "rendition").unlink(missing_ok=True)
        if raw_parent != rundir and not args.keep:
            shutil.rmtree(raw_parent, ignore_errors=True)
    (rundir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print("e2e: ---------------------------------------------------------------")
    alloc = " ".join(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("MALLOC_") or k == "LD_PRELOAD")
    if args.scale_out:
        print(f"e2e: setup   scale-out on one RabbitMQ queue + moto S3: {'; '.join(f[0] for f in FLEETS)} "
              f"(prefetch = concurrency), presets of {Path(args.config).name} (5 eager WebP), {alloc}; first "
              f"publish to last derivatives.ready; {args.reps} run{'' if args.reps == 1 else 's'} each, alternating, medians; "
              f"{os.cpu_count()} CPUs; photos {photos}")
        for line in lines:
            print(line)
        for fmt, r in results.items():
            rates = "; ".join(f"{label} {rate:.2f} jobs/s" for label, rate in r["rates"].items())
            cpu = "; ".join(f"{label} {c * 1000:.0f}" for label, c in r["worker_cpu_per_job"].items())
            loads = "; ".join(f"{label}: {' | '.join(ls)}" for label, ls in r["loads"].items())
            print(f"e2e: {fmt:4s} N={r['n']} ({r['sources']} photos x {math.ceil(r['n'] / r['sources'])} keys)  {rates}")
            print(f"e2e: {fmt:4s} scale-out: 2 workers (c=1 each) / 1 worker (c=1) = {r['scale_out']:.2f} "
                  f"(target >= {r['target']}: {'met' if r['met'] else 'MISSED'}); same budget: 2 workers (c=1 each) / "
                  f"1 worker (c=2) = {r['same_budget']:.2f}")
            print(f"e2e: {fmt:4s} CPU ms/job of the workers with their render helpers: {cpu}")
            print(f"e2e: {fmt:4s} load averages before the runs: {loads}")
        print(f"e2e: wall    {time.monotonic() - t_start:.0f} s; logs {logdir}, results {rundir / 'results.json'}")
        print(f"e2e: result  {'OK (a measurement: exit 0 whatever the ratio)' if ok else 'ERROR'}")
        sys.exit(0 if ok else 1)
    print(f"e2e: setup   concurrency {args.concurrency}, presets of {Path(args.config).name} (5 eager WebP), "
          f"{alloc}; raw = `rendition run --local DIR --once` (start to exit), e2e = one "
          f"`rendition worker --queue rabbitmq` on moto S3 (first publish to last derivatives.ready); "
          f"{args.reps} runs per side alternating raw/e2e, medians; photos {photos}")
    for line in lines:
        print(line)
    for fmt, r in results.items():
        verdict = "met" if r["ratio"] >= 0.9 else "MISSED"
        print(f"e2e: {fmt:4s} N={r['n']} ({r['sources']} photos x {math.ceil(r['n'] / r['sources'])} keys)  "
              f"raw {r['raw']:.2f} img/s  e2e {r['e2e']:.2f} img/s  ratio e2e/raw {r['ratio']:.2f} "
              f"(target >= 0.9: {verdict})")
        print(f"e2e: {fmt:4s} raw start-up: 'local mode started' at {r['started']:.2f} s, first 'rendered' at "
              f"{r['first']:.2f} s (median)")
        print(f"e2e: {fmt:4s} CPU ms/img  raw {r['raw_cpu'] * 1000:.0f}, e2e worker {r['worker_cpu'] * 1000:.0f} "
              f"(+ moto {r['moto_cpu'] * 1000:.0f}, rabbitmq {r['rabbit_cpu'] * 1000:.0f} on the same 2 cores)")
        print(f"e2e: {fmt:4s} per job (median of runs): raw render {r['raw_render_ms']:.0f} ms; e2e job "
              f"{r['job_ms']:.0f} ms (worker's rendition_job_seconds: source GET, render, 5 PUTs, manifest PUT) of "
              f"which render {r['e2e_render_ms']:.0f} ms, so {r['job_ms'] - r['e2e_render_ms']:.0f} ms of storage "
              f"per job on moto (not counting the announce, ack and next delivery)")
        print(f"e2e: {fmt:4s} load averages before each run (raw..., e2e...): {' | '.join(r['loads'])}")
    print(f"e2e: wall    {time.monotonic() - t_start:.0f} s; logs {logdir}, results {rundir / 'results.json'}")
    print(f"e2e: result  {'OK (a measurement: exit 0 whatever the ratio)' if ok else 'ERROR'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
