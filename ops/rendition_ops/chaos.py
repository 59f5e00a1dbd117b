"""Chaos run of the queue workers, on loopback only, bounded in time.

N uploads go through S3 (moto) -> SQS bucket notifications and N more through S3 + MinIO-
shaped AMQP notifications on RabbitMQ, each path consumed by its own `rendition worker`
processes (2 per queue by default, both paths at once). Meanwhile:
  - every ~100 completed jobs (both paths counted together) one worker is SIGKILLed,
    preferably one with jobs in flight, and restarted at once;
  - once, when 40 % of the RabbitMQ path is done, the workers' broker connections are cut
    (a TCP proxy between the workers and 127.0.0.1:5672 drops every connection; RabbitMQ
    itself, which other users share, is never touched);
  - once, when 60 % of all jobs are done, "S3" stops for 10 s: the workers reach moto
    through a TCP proxy, which closes its listening socket (connections are refused) and
    drops every open connection, then listens again on the same port. moto itself keeps
    running, because it holds its state in memory: a real restart would lose the buckets
    and queues. SQS and the uploads go to moto directly and are not affected.
Then: every good source must have exactly one manifest, listing exactly the eager presets,
each stored with the listed size; corrupt uploads nothing; no object outside a manifest
(rendition_ops.verify: derivatives are found through the manifests, never by a hand-built
name). No message may be left on the work / retry queues (ready or unacknowledged), the DLQs
must hold the deliberately corrupt uploads (~1 %) and nothing else, and every derivative's
bytes must equal the same variant's in a clean `rendition run --local --once` of the same
sources (found through the clean run's manifests); comparing none fails.

The script starts its own moto server (from the venv infra/local/services.sh maintains)
and uses random queue / exchange / bucket names on the shared RabbitMQ, deleted at the end.

Time: --deadline-min (default 20) bounds generation, the fault phase and the settling of
the queues; the clean run and the byte comparison after it get at most 10 minutes more. A
full run (1,000 + 1,000) took about 7 minutes on 2 cores with a debug build.

--short is a run of a few minutes for scripts/test.sh (100 + 100 uploads, a SIGKILL every
50 jobs, one broker cut, a 5 s S3 outage).

Usage: scripts/chaos.sh [--short] [--bin PATH] [--uploads N] [...]   (starts services, runs this)
       PYTHONPATH=ops python3 -m rendition_ops.chaos --bin target/debug/rendition [--uploads N]
Exit 0 only if every invariant holds; the summary is the block of `chaos:` lines.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from rendition_ops import common as oc
from rendition_ops import verify

PRESETS = {
    # name: (spec, eager). Derivative names come from the manifests (rendition_ops.verify).
    "sm": ("w=320,fm=webp,q=75", True),
    "thumb": ("w=160,h=160,fit=cover,fm=webp,q=75", True),
    "card": ("w=480,h=270,fit=cover,fm=jpeg,q=80", True),
    "og": ("w=1200,h=630,fit=cover,fm=jpeg,q=82", False),
}
EAGER = [name for name, (_, eager) in PRESETS.items() if eager]
PATHS = ("sqs", "rabbitmq")


# --short: a few minutes, for scripts/test.sh. Every fault still happens (SIGKILLs with jobs in
# flight, the broker cut, the S3 outage); the SQS visibility timeout is short so that a killed
# worker's messages come back within seconds. Options given explicitly win.
SHORT = {"uploads": 100, "kill_every": 50, "outage_secs": 5.0, "corrupt_every": 25, "sqs_visibility": 10,
         "deadline_min": 10.0}


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(prog="scripts/chaos.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true",
                   help="a short run for CI: " + ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in SHORT.items()))
    p.add_argument("--uploads", type=int, default=1000, help="uploads per path (default 1000)")
    p.add_argument("--workers", type=int, default=2, help="worker processes per queue (default 2)")
    p.add_argument("--kill-every", type=int, default=100, help="SIGKILL a worker every N completed jobs (default 100)")
    p.add_argument("--outage-secs", type=float, default=10.0, help="S3 outage length (default 10)")
    p.add_argument("--corrupt-every", type=int, default=100, help="one corrupt upload in N (default 100, i.e. 1 %%)")
    p.add_argument("--deadline-min", type=float, default=20.0, help="global deadline in minutes (default 20)")
    p.add_argument("--sqs-visibility", type=int, default=30, help="sqs.visibility_timeout_secs (default 30)")
    p.add_argument("--sqs-max-receives", type=int, default=10, help="maxReceiveCount of the SQS redrive policy (default 10)")
    p.add_argument("--bin", help="the rendition binary (default target/{release,debug}/rendition)")
    p.add_argument("--seed", type=int, default=20260101, help="image generation seed")
    p.add_argument("--rundir", help="folder for logs and sources (default target/chaos/<run id>)")
    p.add_argument("--keep", action="store_true", help="keep sources and clean-run output after a passing run")
    args = p.parse_args(argv)
    if args.short:
        p.set_defaults(**SHORT)
        args = p.parse_args(argv)
    return args


# ------------------------------------------------------------------ sources


class Source:
    __slots__ = ("corrupt", "data", "guid", "index", "key", "kind", "path")

    def __init__(self, path, index, key, data, corrupt, kind, guid):
        self.path, self.index, self.key, self.data = path, index, key, data
        self.corrupt, self.kind, self.guid = corrupt, kind, guid

    @property
    def rel(self) -> str:
        return self.key[len("originals/"):]


def _gen(args):
    path, i, seed, corrupt_every = args
    rnd = random.Random(f"{seed}-{path}-{i}")
    short = "sqs" if path == "sqs" else "rmq"
    corrupt = corrupt_every > 0 and i % corrupt_every == corrupt_every * 37 // 100
    fmt_roll = rnd.random()
    fmt, ext = ("jpeg", "jpg") if fmt_roll < 0.8 else (("png", "png") if fmt_roll < 0.95 else ("webp", "webp"))
    guid = None
    style = i % 10
    if corrupt:
        ext = "jpg"
    if style < 5:
        guid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        key = f"originals/{short}/{guid}.{ext}"
    elif style < 9:
        key = f"originals/{short}/batch {i // 100}/photo {i}.{ext}"
    else:
        key = f"originals/{short}/ünïcødé/été {i}.{ext}"
    if corrupt:
        kind = oc.CORRUPT_KINDS[(i // corrupt_every) % len(oc.CORRUPT_KINDS)]
        data = oc.make_corrupt(rnd.getrandbits(32), kind)
    else:
        kind = fmt
        w, h = rnd.randrange(480, 1281), rnd.randrange(360, 961)
        progressive = fmt == "jpeg" and rnd.random() < 0.2
        data = oc.make_image(rnd.getrandbits(32), fmt, w, h, quality=rnd.randrange(70, 95), progressive=progressive)
    return Source(path, i, key, data, corrupt, kind, guid)


def generate(n: int, seed: int, corrupt_every: int) -> dict[str, list[Source]]:
    jobs = [(path, i, seed, corrupt_every) for path in PATHS for i in range(n)]
    with cf.ProcessPoolExecutor(max_workers=2) as pool:
        made = list(pool.map(_gen, jobs, chunksize=25))
    return {path: [s for s in made if s.path == path] for path in PATHS}


def config_toml(args) -> str:
    lines = [
        "# Written by rendition_ops.chaos: production settings (infra/k8s/configmap.yaml) with a lean preset set.",
        "[render]", "concurrency = 2", "vips_threads = 1", "",
        "[log]", 'format = "json"', 'filter = "info"', "",
        "[s3]", "timeout_secs = 30", "force_path_style = true", 'region = "us-east-1"', "",
        "[sqs]", "wait_seconds = 20", f"visibility_timeout_secs = {args.sqs_visibility}", "batch_size = 2", "",
        "[rabbitmq]", "max_attempts = 5", "retry_base_ms = 1000", "retry_max_ms = 60000", "delivery_limit = 10", "",
        "[worker]", 'http_addr = "127.0.0.1:0"', "shutdown_grace_secs = 30", "",
    ]
    for name, (spec, eager) in PRESETS.items():
        lines += [f"[presets.{name}]", f'spec = "{spec}"', f"eager = {'true' if eager else 'false'}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ the run


def ready_key(body) -> str | None:
    """The source key of a `derivatives.ready` event (a CloudEvent whose `data` is the
    manifest), or None for another outcome event."""
    event = json.loads(body)
    if event.get("type") != "derivatives.ready":
        return None
    return event["data"]["source"]["key"]


class Chaos:
    def __init__(self, args):
        self.args = args
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.rundir = Path(args.rundir) if args.rundir else oc.REPO / "target" / "chaos" / self.run_id
        self.logdir = self.rundir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.binary = oc.pin_binary(oc.find_binary(args.bin).resolve(), self.rundir)
        self.deadline = time.monotonic() + args.deadline_min * 60
        self.t0 = time.monotonic()
        self.prefix = f"rendition-chaos-{uuid.uuid4().hex[:10]}"
        self.bucket = {"sqs": f"{self.prefix}-sqs", "rabbitmq": f"{self.prefix}-rmq"}
        self.rq = {
            "queue": f"{self.prefix}.jobs",
            "uploads": f"{self.prefix}.uploads",
            "events": f"{self.prefix}.events",
            "ready": f"{self.prefix}.ready",
        }
        self.retry_queues = [f"{self.rq['queue']}.retry.{n}" for n in range(1, 5)]
        self.dlq = f"{self.rq['queue']}.dlq"
        self.moto = None
        self.s3proxy = None
        self.amqpproxy = None
        self.workers: list[oc.Worker] = []
        self.done = {p: set() for p in PATHS}
        self.ready_events = dict.fromkeys(PATHS, 0)
        self.uploaded = dict.fromkeys(PATHS, 0)
        self.upload_errors: list[str] = []
        self.kills: list[dict] = []
        self.cut_info = None
        self.outage = None
        self.notes: list[str] = []
        self.crashes: list[str] = []
        self.stop_uploads = threading.Event()

    def log(self, msg):
        oc.log("chaos", msg)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    # -------------------------------------------------------------- setup

    def setup(self):
        a = self.args
        self.log(f"run dir {self.rundir}; binary {self.binary}")
        t = time.monotonic()
        self.sources = generate(a.uploads, a.seed, a.corrupt_every)
        self.good = {p: {s.key for s in self.sources[p] if not s.corrupt} for p in PATHS}
        self.corrupt = {p: {s.key for s in self.sources[p] if s.corrupt} for p in PATHS}
        size = sum(len(s.data) for p in PATHS for s in self.sources[p])
        self.log(f"generated {2 * a.uploads} sources ({size / 1e6:.1f} MB, "
                 f"{sum(len(c) for c in self.corrupt.values())} corrupt) in {time.monotonic() - t:.1f} s")
        self.config = self.rundir / "chaos.toml"
        self.config.write_text(config_toml(a))

        self.moto = oc.Moto(self.logdir / "moto.log")
        self.log(f"moto (ours) at {self.moto.endpoint}")
        self.s3, self.sqs = oc.boto_clients(self.moto.endpoint)
        self.s3proxy = oc.TcpProxy(("127.0.0.1", self.moto.port), "s3")
        self.amqpproxy = oc.TcpProxy(("127.0.0.1", 5672), "amqp")
        self.log(f"workers reach S3 via proxy {self.s3proxy.addr}, RabbitMQ via proxy {self.amqpproxy.addr}")

        for b in self.bucket.values():
            self.s3.create_bucket(Bucket=b)
        # SQS: work queue with a redrive DLQ, a queue for completion events, notifications.
        dlq_url = self.sqs.create_queue(QueueName=f"{self.prefix}-dlq")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sqs_dlq = dlq_url
        self.sqs_queue = self.sqs.create_queue(
            QueueName=f"{self.prefix}-jobs",
            Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                                     "maxReceiveCount": str(a.sqs_max_receives)})},
        )["QueueUrl"]
        self.sqs_ready = self.sqs.create_queue(QueueName=f"{self.prefix}-ready")["QueueUrl"]
        qarn = self.sqs.get_queue_attributes(QueueUrl=self.sqs_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket["sqs"],
            NotificationConfiguration={"QueueConfigurations": [{
                "QueueArn": qarn, "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "originals/"}]}},
            }]},
        )

        # RabbitMQ: our own connection (direct, not through the proxy) to watch the queues.
        import pika
        self.pika_params = pika.ConnectionParameters("127.0.0.1", 5672, "/", pika.PlainCredentials("guest", "guest"),
                                                     heartbeat=30, blocked_connection_timeout=60)
        self.conn = pika.BlockingConnection(self.pika_params)
        self.ch = self.conn.channel()
        self.ch.exchange_declare(self.rq["events"], "topic", durable=True)
        self.ch.queue_declare(self.rq["ready"], durable=True)
        self.ch.queue_bind(self.rq["ready"], self.rq["events"], "derivatives.ready")

        base = dict(os.environ)
        base = {k: v for k, v in base.items() if not k.startswith("RENDITION__")}
        base.update(oc.AWS_ENV)
        base["MALLOC_ARENA_MAX"] = "2"
        s3_via_proxy = f"http://{self.s3proxy.addr}"
        env_sqs = dict(base, **{
            "RENDITION__S3__BUCKET": self.bucket["sqs"],
            "RENDITION__S3__ENDPOINT": s3_via_proxy,
            "RENDITION__SQS__QUEUE_URL": self.sqs_queue,
            "RENDITION__SQS__ENDPOINT": self.moto.endpoint,
            "RENDITION__SQS__REGION": "us-east-1",
            "RENDITION__SQS__EVENTS_QUEUE_URL": self.sqs_ready,
        })
        env_rmq = dict(base, **{
            "RENDITION__S3__BUCKET": self.bucket["rabbitmq"],
            "RENDITION__S3__ENDPOINT": s3_via_proxy,
            "RENDITION__RABBITMQ__URL": f"amqp://guest:guest@{self.amqpproxy.addr}/%2f",
            "RENDITION__RABBITMQ__QUEUE": self.rq["queue"],
            "RENDITION__RABBITMQ__UPLOADS_EXCHANGE": self.rq["uploads"],
            "RENDITION__RABBITMQ__EVENTS_EXCHANGE": self.rq["events"],
        })
        cfg = ["--config", str(self.config), "worker", "--queue"]
        for n in range(1, a.workers + 1):
            self.workers.append(oc.Worker(f"sqs-{n}", self.binary, [*cfg, "sqs"], env_sqs, self.logdir))
            self.workers.append(oc.Worker(f"rabbitmq-{n}", self.binary, [*cfg, "rabbitmq"], env_rmq, self.logdir))
        for w in self.workers:
            w.start()
        for w in self.workers:
            started = "consuming" if w.name.startswith("rabbitmq") else "sqs consumer started"
            if not w.wait_log(lambda e, started=started: e.get("message") == started, 60):
                raise RuntimeError(f"worker {w.name} did not start consuming (see {w.logs[-1]})")
        self.log(f"{len(self.workers)} workers consuming")

    # -------------------------------------------------------------- uploads

    def upload_sqs(self):
        s3, _ = oc.boto_clients(self.moto.endpoint)
        try:
            for s in self.sources["sqs"]:
                if self.stop_uploads.is_set():
                    return
                s3.put_object(Bucket=self.bucket["sqs"], Key=s.key, Body=s.data, ContentType="application/octet-stream")
                self.uploaded["sqs"] += 1
        except Exception as e:  # noqa: BLE001
            self.upload_errors.append(f"sqs uploader: {e!r}")

    def upload_rabbit(self):
        import pika
        s3, _ = oc.boto_clients(self.moto.endpoint)
        conn = pika.BlockingConnection(self.pika_params)
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
            for s in self.sources["rabbitmq"]:
                if self.stop_uploads.is_set():
                    return
                put = s3.put_object(Bucket=self.bucket["rabbitmq"], Key=s.key, Body=s.data,
                                    ContentType="application/octet-stream")
                body = oc.minio_event(self.bucket["rabbitmq"], s.key, len(s.data), put["ETag"].strip('"'))
                # Confirmed and mandatory: raises if the broker nacks or nothing routes it.
                ch.basic_publish(self.rq["uploads"], "originals", body, props, mandatory=True)
                self.uploaded["rabbitmq"] += 1
        except Exception as e:  # noqa: BLE001
            self.upload_errors.append(f"rabbitmq uploader: {e!r}")
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    # -------------------------------------------------------------- observing

    def drain_ready(self):
        while True:
            method, _, body = self.ch.basic_get(self.rq["ready"], auto_ack=True)
            if method is None:
                break
            self.ready_events["rabbitmq"] += 1
            self.done["rabbitmq"].add(ready_key(body))
        while True:
            got = self.sqs.receive_message(QueueUrl=self.sqs_ready, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            msgs = got.get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                # The events queue receives every outcome event; only `ready` counts here.
                key = ready_key(m["Body"])
                if key is not None:
                    self.ready_events["sqs"] += 1
                    self.done["sqs"].add(key)
            self.sqs.delete_message_batch(QueueUrl=self.sqs_ready, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])

    def completed(self) -> int:
        return sum(len(self.done[p] & self.good[p]) for p in PATHS)

    def sqs_depth(self, url) -> tuple[int, int, int]:
        a = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return (int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"]),
                int(a["ApproximateNumberOfMessagesDelayed"]))

    def rabbit_counts(self) -> dict[str, tuple[int, int]]:
        """(ready, unacked) of the work, retry and dead-letter queues."""
        ctl = oc.rabbitmqctl_queues(self.prefix)
        names = [self.rq["queue"], *self.retry_queues, self.dlq]
        if ctl is not None:
            return {q: ctl.get(q, (0, 0)) for q in names}
        # No rabbitmqctl: a passive declare sees ready messages only.
        return {q: (self.ch.queue_declare(q, passive=True).method.message_count, 0) for q in names}

    # -------------------------------------------------------------- faults

    def kill_one(self):
        """SIGKILLs one worker (taking turns), preferably one with jobs in flight: its
        /metrics are polled for up to 5 s for such a worker; then it is restarted at once."""
        n = len(self.kills)
        order = self.workers[n % len(self.workers):] + self.workers[:n % len(self.workers)]
        victim, in_flight = None, 0
        deadline = time.monotonic() + 5
        while victim is None and time.monotonic() < deadline:
            for w in order:
                f = w.metrics().get("rendition_in_flight", 0) if w.alive() else 0
                if f > 0:
                    victim, in_flight = w, int(f)
                    break
            else:
                time.sleep(0.1)
        if victim is None:
            victim = next(w for w in order if w.alive())
        victim.kill()
        self.kills.append({"worker": victim.name, "in_flight": in_flight, "at": self.completed(),
                           "t": round(time.monotonic() - self.t0, 1)})
        victim.start()
        self.log(f"SIGKILL {victim.name} ({in_flight} in flight) at {self.completed()} jobs; restarted")

    def cut_broker(self):
        n = self.amqpproxy.cut()
        self.cut_info = {"connections": n, "t": round(time.monotonic() - self.t0, 1), "at": len(self.done["rabbitmq"])}
        self.log(f"broker connections cut: {n}")

    # -------------------------------------------------------------- the loop

    def run(self):
        a = self.args
        total_good = sum(len(g) for g in self.good.values())
        threads = [threading.Thread(target=self.upload_sqs, daemon=True),
                   threading.Thread(target=self.upload_rabbit, daemon=True)]
        for t in threads:
            t.start()
        next_kill = a.kill_every
        cut_at = max(1, int(len(self.good["rabbitmq"]) * 0.4))
        outage_at = max(1, int(total_good * 0.6))
        outage_end = None
        last_report = 0.0
        while self.left() > 0:
            self.drain_ready()
            done = self.completed()
            now = time.monotonic()
            if self.cut_info is None and len(self.done["rabbitmq"] & self.good["rabbitmq"]) >= cut_at:
                self.cut_broker()
            if self.outage is None and done >= outage_at:
                self.s3proxy.down()
                self.outage = {"start": now, "at": done}
                outage_end = now + a.outage_secs
                self.log(f"S3 down (proxy closed) at {done} jobs for {a.outage_secs:g} s")
            if outage_end is not None and now >= outage_end:
                self.s3proxy.up()
                self.outage["secs"] = time.monotonic() - self.outage["start"]
                outage_end = None
                self.log(f"S3 back after {self.outage['secs']:.1f} s")
            if a.kill_every > 0 and done >= next_kill:
                self.kill_one()
                next_kill += a.kill_every
            for w in self.workers:
                if not w.alive() and w.proc.returncode is not None and w.proc.returncode != -9:
                    self.crashes.append(w.name)
                    self.notes.append(f"{w.name} exited by itself with {w.proc.returncode} (log {w.logs[-1]}); restarted")
                    self.log(self.notes[-1])
                    w.start()
            if now - last_report > 15:
                last_report = now
                self.log(f"progress: sqs {len(self.done['sqs'] & self.good['sqs'])}/{len(self.good['sqs'])}, "
                         f"rabbitmq {len(self.done['rabbitmq'] & self.good['rabbitmq'])}/{len(self.good['rabbitmq'])}, "
                         f"uploaded {self.uploaded['sqs']}+{self.uploaded['rabbitmq']}, kills {len(self.kills)}")
            if self.upload_errors:
                raise RuntimeError("; ".join(self.upload_errors))
            all_done = all(self.good[p] <= self.done[p] for p in PATHS)
            faults_done = (self.outage is not None and outage_end is None) and self.cut_info is not None
            if all_done and faults_done:
                break
            time.sleep(0.5)
        self.chaos_secs = time.monotonic() - self.t0
        if outage_end is not None:  # deadline hit mid-outage
            self.s3proxy.up()
            self.outage["secs"] = time.monotonic() - self.outage["start"]
        self.stop_uploads.set()
        self.log(f"all good sources announced after {self.chaos_secs:.0f} s; waiting for the queues to settle")
        self.settle()

    def settle(self):
        """Waits (bounded) until work and retry queues are empty and the DLQs hold at least
        the corrupt uploads: redeliveries of killed workers' messages come back after the
        SQS visibility timeout."""
        limit = time.monotonic() + min(max(60, 3 * self.args.sqs_visibility + 30), max(self.left(), 0))
        n_corrupt = {p: len(self.corrupt[p]) for p in PATHS}
        while True:
            self.drain_ready()
            rc = self.rabbit_counts()
            rabbit_busy = sum(sum(rc[q]) for q in [self.rq["queue"], *self.retry_queues])
            sqs_busy = sum(self.sqs_depth(self.sqs_queue))
            dlq_r = sum(rc[self.dlq])
            dlq_s = sum(self.sqs_depth(self.sqs_dlq))
            if (rabbit_busy == 0 and sqs_busy == 0 and dlq_r >= n_corrupt["rabbitmq"]
                    and dlq_s >= n_corrupt["sqs"]):
                self.settled_running = {"rabbitmq": rc, "sqs": self.sqs_depth(self.sqs_queue)}
                return
            if time.monotonic() > limit:
                self.settled_running = {"rabbitmq": rc, "sqs": self.sqs_depth(self.sqs_queue)}
                self.notes.append(f"queues did not settle: rabbitmq {rc}, sqs {self.sqs_depth(self.sqs_queue)}")
                self.log(self.notes[-1])
                return
            time.sleep(1)

    # -------------------------------------------------------------- verification

    def stop_workers(self):
        codes = {}
        with cf.ThreadPoolExecutor(len(self.workers)) as pool:
            for w, code in zip(self.workers, pool.map(lambda w: w.terminate(60), self.workers), strict=True):
                codes[w.name] = code
        self.exit_codes = codes

    def read_dlqs(self):
        out = {p: [] for p in PATHS}
        while True:
            method, props, body = self.ch.basic_get(self.dlq, auto_ack=True)
            if method is None:
                break
            h = props.headers or {}
            kind = h.get("x-rendition-error-kind")
            kind = kind.decode() if isinstance(kind, bytes) else kind
            out["rabbitmq"].append({"keys": oc.event_keys(body), "kind": kind or ("x-death" if "x-death" in h else None)})
        empty = 0
        while empty < 2:
            got = self.sqs.receive_message(QueueUrl=self.sqs_dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                           VisibilityTimeout=600, MessageAttributeNames=["All"])
            msgs = got.get("Messages", [])
            if not msgs:
                empty += 1
                continue
            for m in msgs:
                kind = (m.get("MessageAttributes") or {}).get("rendition-error-kind", {}).get("StringValue")
                out["sqs"].append({"keys": oc.event_keys(m["Body"]), "kind": kind or "redrive"})
        return out

    def uploads(self, p: str) -> list[verify.Upload]:
        return [verify.Upload(s.key, not s.corrupt, s.guid) for s in self.sources[p]]

    def verify_storage(self) -> dict[str, verify.StorageReport]:
        """Per path: what the bucket holds, found through the manifests (rendition_ops.verify)."""
        return {p: verify.verify_bucket(self.s3, self.bucket[p], self.uploads(p), set(EAGER)) for p in PATHS}

    def clean_run(self):
        """The same sources through `rendition run --local --once`, no faults."""
        clean = self.rundir / "clean"
        shutil.rmtree(clean, ignore_errors=True)
        for p in PATHS:
            for s in self.sources[p]:
                f = clean / s.key
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(s.data)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RENDITION__")}
        env["MALLOC_ARENA_MAX"] = "2"
        t = time.monotonic()
        with open(self.logdir / "clean-run.log", "wb") as logf:
            r = subprocess.run([str(self.binary), "--config", str(self.config), "run", "--local", str(clean), "--once"],
                               env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=max(0, self.left()) + 600)
        self.clean_secs = time.monotonic() - t
        if r.returncode != 0:
            raise RuntimeError(f"clean run failed with {r.returncode} (see {self.logdir / 'clean-run.log'})")
        return clean

    def compare(self, clean: Path, storage: dict[str, verify.StorageReport]) -> dict[str, verify.Comparison]:
        """Every derivative the manifests list against the clean run's, through its manifests."""
        return {p: verify.compare_with_clean(self.s3, self.bucket[p], storage[p].derivatives, clean) for p in PATHS}

    def log_counts(self):
        c = {"reconnect": 0, "retry": 0, "dead_letter": 0, "panic": 0, "errors": 0, "requeue": 0}
        for w in self.workers:
            for path in w.logs:
                for e in oc.read_log(path):
                    m = e.get("message", "")
                    if m == "RabbitMQ unavailable; reconnecting":
                        c["reconnect"] += 1
                    elif m == "job failed; will retry":
                        c["retry"] += 1
                    elif m in ("job failed; dead-lettering", "permanent failure; dead-lettering"):
                        c["dead_letter"] += 1
                    elif "panic" in m:
                        c["panic"] += 1
                    elif "requeueing" in m:
                        c["requeue"] += 1
                    if e.get("level") == "ERROR":
                        c["errors"] += 1
        return c

    # -------------------------------------------------------------- teardown

    def cleanup(self):
        for w in self.workers:
            if w.alive():
                w.terminate(30)
        try:
            import pika
            conn = pika.BlockingConnection(self.pika_params)
            ch = conn.channel()
            for q in [self.rq["queue"], self.dlq, *self.retry_queues, self.rq["ready"]]:
                ch.queue_delete(q)
            for x in (self.rq["uploads"], self.rq["events"]):
                ch.exchange_delete(x)
            conn.close()
        except Exception as e:  # noqa: BLE001
            self.log(f"RabbitMQ cleanup: {e!r}")
        for px in (self.s3proxy, self.amqpproxy):
            if px:
                px.close()
        if self.moto:
            self.moto.stop()
        (self.rundir / "rendition").unlink(missing_ok=True)


def main():
    args = parse_args()
    oc.ensure_venv()
    chaos = Chaos(args)
    t_start = time.monotonic()
    ok = False
    try:
        chaos.setup()
        chaos.run()
        chaos.stop_workers()
        # With every consumer gone, unacknowledged messages would be back on the queues.
        rc_after = chaos.rabbit_counts()
        sqs_after = chaos.sqs_depth(chaos.sqs_queue)
        dlq = chaos.read_dlqs()
        storage = chaos.verify_storage()
        chaos.log("clean run: rendition run --local --once on the same sources")
        clean = chaos.clean_run()
        comparison = chaos.compare(clean, storage)
        logs = chaos.log_counts()
        ok = report(chaos, rc_after, sqs_after, dlq, storage, comparison, logs, time.monotonic() - t_start)
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print(f"chaos: ERROR {e!r}")
        print(f"chaos: logs {chaos.logdir}")
        print("chaos: result FAIL")
    finally:
        chaos.cleanup()
        if ok and not args.keep:
            shutil.rmtree(chaos.rundir / "clean", ignore_errors=True)
    sys.exit(0 if ok else 1)


def classify_dlq(dlq: dict[str, list[dict]], corrupt: dict[str, set[str]]):
    """Dead-lettered messages per path ({"keys": source keys, "kind": error kind}) against the
    corrupt uploads per path. Returns (messages holding only corrupt uploads, [(path, message)]
    for every other message, corrupt uploads never dead-lettered, {kind: messages})."""
    n_corrupt, other, missing, kinds = 0, [], 0, {}
    for p, messages in dlq.items():
        seen: set[str] = set()
        for m in messages:
            if m["keys"] and all(k in corrupt[p] for k in m["keys"]):
                n_corrupt += 1
                seen.update(m["keys"])
            else:
                other.append((p, m))
            kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
        missing += len(corrupt[p] - seen)
    return n_corrupt, other, missing, kinds


def report(c: Chaos, rc_after, sqs_after, dlq, storage, comparison, logs, wall) -> bool:
    a = c.args
    good_done = {p: len(c.done[p] & c.good[p]) for p in PATHS}
    unacked_rabbit = sum(sum(rc_after[q]) for q in [c.rq["queue"], *c.retry_queues])
    unacked_running = sum(sum(c.settled_running["rabbitmq"][q]) for q in [c.rq["queue"], *c.retry_queues])
    unacked_sqs = sum(sqs_after)
    dlq_corrupt, dlq_other, corrupt_missing, kinds = classify_dlq(dlq, c.corrupt)
    corrupt_total = sum(len(c.corrupt[p]) for p in PATHS)
    st = verify.merge_storage(storage)
    cmp = verify.merge_comparisons(comparison)
    exits_ok = all(code == 0 for code in c.exit_codes.values())
    outage = c.outage or {}
    inflight_kills = sum(1 for k in c.kills if k["in_flight"] > 0)
    checks = {
        "all good sources announced": all(c.good[p] <= c.done[p] for p in PATHS),
        **verify.storage_checks(st, cmp),
        "nothing unacknowledged": unacked_rabbit == 0 and unacked_sqs == 0 and unacked_running == 0,
        "DLQs hold only corrupt uploads": not dlq_other,
        "every corrupt upload dead-lettered": corrupt_missing == 0,
        "workers exit 0 on SIGTERM": exits_ok,
        "broker cut": bool(c.cut_info) and c.cut_info["connections"] > 0,
        "S3 outage": bool(outage.get("secs")),
        "SIGKILLs as scheduled, one with jobs in flight": a.kill_every <= 0
        or (len(c.kills) >= sum(good_done.values()) // a.kill_every and inflight_kills > 0),
        "no worker exited by itself": not c.crashes,
        "within the deadline": c.left() > 0,
    }
    problems = st.problems[:20] + cmp.unmatched[:20] + cmp.mismatches[:20]
    for p, m in dlq_other[:20]:
        problems.append(f"unexpected DLQ message on {p}: {m}")
    for line in problems:
        print(f"chaos: problem: {line}")
    for n in c.notes:
        print(f"chaos: note: {n}")
    print("chaos: ---------------------------------------------------------------")
    print(f"chaos: uploads                {a.uploads} via S3->SQS + {a.uploads} via S3+RabbitMQ (MinIO events); "
          f"corrupt {len(c.corrupt['sqs'])} + {len(c.corrupt['rabbitmq'])}")
    print(f"chaos: workers                {a.workers} per queue ({len(c.workers)} processes, concurrency 2 each), "
          f"presets {', '.join(EAGER)} eager")
    print(f"chaos: jobs completed         sqs {good_done['sqs']}/{len(c.good['sqs'])}, "
          f"rabbitmq {good_done['rabbitmq']}/{len(c.good['rabbitmq'])} "
          f"(derivatives.ready events: {c.ready_events['sqs']} + {c.ready_events['rabbitmq']}, duplicates allowed)")
    print(f"chaos: kills                  {len(c.kills)} SIGKILL + restart ({inflight_kills} with jobs in flight; "
          f"{', '.join(sorted({k['worker'] for k in c.kills}))})")
    cut = c.cut_info or {}
    print(f"chaos: broker cut             {1 if cut else 0} (at {cut.get('at', '-')} rabbitmq jobs, "
          f"{cut.get('connections', 0)} worker connections dropped by the proxy); reconnects logged {logs['reconnect']}")
    print(f"chaos: S3 outage              {outage.get('secs', 0):.1f} s at {outage.get('at', '-')} jobs "
          f"(TCP proxy in front of moto closed + connections dropped; moto kept its state); retries logged {logs['retry']}")
    print(f"chaos: manifests              {st.manifests} read ({st.objects} objects under derived/); missing "
          f"{st.missing_manifests}, not matching their derivatives {st.bad_manifests + st.size_mismatches}, extra "
          f"versions {st.extra_versions}, of sources not uploaded {st.unexpected_manifests}, of corrupt uploads "
          f"{st.corrupt_with_output}")
    print(f"chaos: missing derivatives    {st.missing_derivatives} (listed by a manifest, not stored); objects listed "
          f"by no manifest {st.unlisted_objects}")
    print(f"chaos: unacked                {unacked_rabbit + unacked_sqs} after shutdown "
          f"(rabbitmq work+retry ready+unacked: running {unacked_running}, stopped {unacked_rabbit}; "
          f"sqs visible/in-flight/delayed {'/'.join(map(str, sqs_after))})")
    print(f"chaos: DLQ messages           {dlq_corrupt + len(dlq_other)}: corrupt {dlq_corrupt} "
          f"({corrupt_total - corrupt_missing}/{corrupt_total} corrupt uploads), other {len(dlq_other)}; "
          f"kinds {kinds}")
    print(f"chaos: byte mismatches        {len(cmp.mismatches)} of {cmp.compared} derivatives compared "
          f"({len(st.derivatives)} listed and stored; {len(cmp.unmatched)} without a clean-run counterpart) vs a clean "
          f"`rendition run --local --once`, both found through their manifests")
    print(f"chaos: worker exits (SIGTERM) {c.exit_codes}")
    print(f"chaos: log                    panics {logs['panic']}, ERROR lines {logs['errors']}, requeues {logs['requeue']}")
    print(f"chaos: wall                   {wall:.0f} s (faults phase {c.chaos_secs:.0f} s, clean run {c.clean_secs:.0f} s); "
          f"logs {c.logdir}")
    failed = [k for k, v in checks.items() if not v]
    print(f"chaos: result                 {'PASS' if not failed else 'FAIL: ' + '; '.join(failed)}")
    return not failed


if __name__ == "__main__":
    main()
