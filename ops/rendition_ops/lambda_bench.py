"""Latency of the Lambda's miss path: p50 and p99 of a warm and of a cold on-demand miss.

The release `rendition-lambda` binary polls cargo-lambda's Runtime API emulator on loopback
(`cargo-lambda lambda watch --only-lambda-apis`, as tests/integration/lambda.rs runs it),
with the environment that test gives it (plus the production allocator: jemalloc preloaded
with the images' MALLOC_CONF, MALLOC_ARENA_MAX=2, and the template's on-demand memory size).
Its S3 is a moto server of our own holding two sources: one real photo of
scripts/fetch-photos.sh and a mid-size JPEG made from it (`rendition render`, 1600 px wide).

A miss is a Function URL request (payload 2.0, through the emulator's Invoke API) for a
signed explicit spec `w=NNN,fm=webp` that is not stored yet: every request has its own
width, so each one decodes the source, renders, stores and answers. URLs come from
`rendition url` (the one URL generator) with the function's signing key.

- warm: one long-lived function process; after one warm-up miss, M sequential misses
  (default 50), each timed by the client from sending the invoke request to reading the
  whole response.
- cold: a fresh function process per invocation (default 20, each with a fresh emulator
  started beforehand, untimed): timed from the process's start (just before exec) to the
  response of its first invocation, which was sent at once and waited in the emulator
  until the runtime polled for it. Init is reported apart: the function's own `init_ms`
  (its "cold start: initialised" line) and when that line reached us.

cargo-lambda's emulator now and then delivers an event ~40 ms late (it writes the /next
response's headers and body in two segments and the second waits for the runtime's delayed
ACK: seen with strace); warm misses hit by it are counted and a second p50/p99 without them
is printed. The real Runtime API is another implementation.

Per phase (default on): the function's S3 traffic goes through a timing proxy on loopback
that records each request (method, key class, first request byte to last response byte):
the miss probe (GET of the derivative: 404), the source GET, the PUT of the derivative
and the HEAD for its ETag; "rest" is the invocation's client-side time less those
(URL verification, decode + resize + encode, the response's base64 and JSON, the runtime
and the emulator). --no-s3-timing talks to moto directly.

p99 is the nearest-rank percentile: with M <= 100 samples it is the largest one.

Usage: scripts/lambda-bench.sh [options]   (builds, installs cargo-lambda, runs this)
       PYTHONPATH=ops python3 -m rendition_ops.lambda_bench --bin target/release/rendition \
           --lambda-bin target/release/rendition-lambda --cargo-lambda PATH [--warm 50] [--cold 20]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from rendition_ops import common as oc
from rendition_ops.soak import jemalloc_env  # the production allocator settings

SIGNING_KEY = "rendition-lambda-bench-key-0123456789abcdef"
BUCKET = "rendition-lambda-bench"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warm", type=int, default=50, help="warm misses after one warm-up (default 50)")
    p.add_argument("--cold", type=int, default=20, help="cold misses, a fresh process each (default 20)")
    p.add_argument("--refs", type=int, default=20,
                   help="warm reference requests of each kind: refused (403) and hit (default 20; 0: none)")
    p.add_argument("--photos", help="folder of photos (default: the last line of scripts/fetch-photos.sh)")
    p.add_argument("--photo", default="jpeg-08-5312x2988.jpg", help="the photo (default jpeg-08-5312x2988.jpg)")
    p.add_argument("--mid-width", type=int, default=1600, help="width of the mid-size source (default 1600)")
    p.add_argument("--width", type=int, default=500, help="first requested width; each miss takes the next (default 500)")
    p.add_argument("--memory", default="2048", help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 2048, the template's)")
    p.add_argument("--allocator", choices=["jemalloc", "glibc"], default="jemalloc")
    p.add_argument("--no-s3-timing", action="store_true", help="no timing proxy in front of moto (no phases)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per invocation (default 120)")
    p.add_argument("--bin", help="the rendition binary, for `url` and `render` (default target/{release,debug}/rendition)")
    p.add_argument("--lambda-bin", help="rendition-lambda (default target/{release,debug}/rendition-lambda)")
    p.add_argument("--cargo-lambda", help="cargo-lambda (default: infra/local/services.sh cargo-lambda)")
    p.add_argument("--rundir", help="logs folder (default target/lambda-bench/<run id>)")
    return p.parse_args()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def find(explicit: str | None, name: str) -> Path:
    if explicit:
        return Path(explicit)
    for profile in ("release", "debug"):
        p = oc.REPO / "target" / profile / name
        if p.exists():
            return p
    raise SystemExit(f"no target/{{release,debug}}/{name}: build it first")


# ------------------------------------------------------------------ S3 timing proxy

_METHOD = re.compile(rb"^(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")


class S3Timer:
    """An HTTP/1.1 proxy to moto that timestamps every request: from its first byte to the
    last byte of its response (keep-alive connections carry one request at a time)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.ls.close()

    def _accept(self):
        while not self.closed:
            try:
                r, _, _ = select.select([self.ls], [], [], 0.2)
                if not r:
                    continue
                client, _ = self.ls.accept()
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = {"current": None}
            threading.Thread(target=self._pump, args=(client, upstream, conn, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, conn, False), daemon=True).start()

    def _pump(self, src, dst, conn, outbound: bool):
        try:
            while True:
                data = src.recv(262144)
                if not data:
                    break
                now = time.monotonic()
                if outbound:
                    m = _METHOD.match(data)
                    if m:
                        path = m.group(2).decode("latin-1")
                        status = None
                        req = {"t0": now, "t1": None, "t2": None, "method": m.group(1).decode(),
                               "path": path, "status": status}
                        with self.lock:
                            conn["current"] = req
                            self.requests.append(req)
                else:
                    req = conn["current"]
                    if req is not None:
                        if req["t1"] is None:
                            req["t1"] = now
                            st = re.match(rb"HTTP/1\.[01] (\d{3})", data)
                            req["status"] = int(st.group(1)) if st else None
                        req["t2"] = now
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def between(self, t0: float, t1: float) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if t0 <= r["t0"] <= t1]


def phase_of(req: dict) -> str:
    path = req["path"].split("?", 1)[0]
    m = req["method"]
    if "/derived/" in path:
        return {"GET": "probe GET", "PUT": "PUT", "HEAD": "HEAD"}.get(m, m)
    if "/originals/" in path:
        return f"source {m}"
    return f"other {m}"


# ------------------------------------------------------------------ emulator and function


class Emulator:
    """`cargo-lambda lambda watch --only-lambda-apis` on a free loopback port."""

    def __init__(self, cargo_lambda: Path, logfile: Path):
        for _ in range(5):
            self.port = oc.free_port()
            self._log = open(logfile, "ab")
            self.proc = subprocess.Popen(
                [str(cargo_lambda), "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1",
                 "-P", str(self.port), "--timeout", "120"],
                cwd=oc.REPO, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"cargo-lambda did not listen (see {logfile})")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def invoke(self, payload: dict, timeout: float) -> tuple[float, float, int, dict]:
        """(sent, received) monotonic times, HTTP status, the JSON answer."""
        body = json.dumps(payload).encode()
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("POST", "/2015-03-31/functions/_/invocations", body=body,
                  headers={"Content-Type": "application/json", "Connection": "close"})
        r = c.getresponse()
        raw = r.read()
        t1 = time.monotonic()
        c.close()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {"raw": raw[:500].decode("utf-8", "replace")}
        return t0, t1, r.status, doc


class Function:
    """One rendition-lambda process attached to an emulator, its JSON log lines timestamped."""

    def __init__(self, binary: Path, env: dict, emulator: Emulator, cwd: Path, logfile: Path):
        fenv = dict(env)
        fenv["AWS_LAMBDA_RUNTIME_API"] = f"http://127.0.0.1:{emulator.port}/.rt"
        self.lines: list[tuple[float, dict]] = []
        self._log = open(logfile, "ab")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen([str(binary)], env=fenv, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            now = time.monotonic()
            self._log.write(line)
            try:
                self.lines.append((now, json.loads(line)))
            except ValueError:
                self.lines.append((now, {"raw": line.decode("utf-8", "replace")}))

    def initialised(self, timeout: float) -> tuple[float, float]:
        """(arrival time of the "cold start: initialised" line, its init_ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, v in list(self.lines):
                if v.get("message") == "cold start: initialised":
                    return t, float(v["init_ms"])
            if self.proc.poll() is not None:
                break
            time.sleep(0.005)
        raise RuntimeError(f"no cold-start line (exit {self.proc.poll()}); log: {self.lines[-5:]}")

    def request_line(self, n: int, timeout: float) -> float | None:
        """The timestamp (Unix seconds) of the n-th "request" log line, when it comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            found = [v for _, v in list(self.lines) if v.get("message") == "request"]
            if len(found) >= n:
                return log_time(found[n - 1].get("timestamp", ""))
            if time.monotonic() > deadline:
                return None
            time.sleep(0.002)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)
        self._log.close()


WALL_OFFSET = time.time() - time.monotonic()


def log_time(stamp: str) -> float | None:
    """Unix seconds of a tracing timestamp such as 2026-11-29T05:00:18.458706Z."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", stamp)
    if not m:
        return None
    import calendar
    return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + float(m.group(2) or 0)


def url_event(path: str, query: str) -> dict:
    """A Lambda Function URL request (payload 2.0), as tests/integration/lambda.rs builds it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
            "user-agent": "rendition-bench",
            "accept": "image/webp,*/*",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghijklmnop",
            "domainName": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnop",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "rendition-bench"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }


def check_reply(status: int, doc: dict, width: int) -> int:
    """The size of the WebP a miss answered; raises on anything else."""
    if status != 200 or doc.get("statusCode") != 200:
        raise RuntimeError(f"invocation answered {status}: {json.dumps(doc)[:400]}")
    body = base64.b64decode(doc["body"]) if doc.get("isBase64Encoded") else doc.get("body", "").encode()
    if not (body[:4] == b"RIFF" and body[8:12] == b"WEBP"):
        raise RuntimeError(f"not a WebP (w={width}): {body[:16]!r}")
    return len(body)


# ------------------------------------------------------------------ main


def main():
    args = parse_args()
    oc.ensure_venv()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    rundir = Path(args.rundir) if args.rundir else oc.REPO / "target" / "lambda-bench" / run_id
    logdir = rundir / "logs"
    task_root = rundir / "task"  # empty: no rendition.toml is picked up (as in the tests)
    logdir.mkdir(parents=True, exist_ok=True)
    task_root.mkdir(exist_ok=True)
    rendition = oc.pin_binary(oc.find_binary(args.bin).resolve(), rundir)
    lam_src = find(args.lambda_bin, "rendition-lambda").resolve()
    lam = rundir / "rendition-lambda"
    try:
        os.link(lam_src, lam)
    except OSError:
        shutil.copy2(lam_src, lam)
    if args.cargo_lambda:
        cargo_lambda = Path(args.cargo_lambda)
    else:
        out = subprocess.run(["bash", str(oc.REPO / "infra/local/services.sh"), "cargo-lambda"], check=True,
                             stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        cargo_lambda = Path(out.stdout.strip().splitlines()[-1])
    if args.photos:
        photos = Path(args.photos)
    else:
        out = subprocess.run([str(oc.REPO / "scripts/fetch-photos.sh")], check=True, stdout=subprocess.PIPE,
                             text=True, stdin=subprocess.DEVNULL)
        photos = Path(out.stdout.strip().splitlines()[-1])
    photo = photos / args.photo
    if not photo.exists():
        raise SystemExit(f"lambda: no {photo}")

    moto = oc.Moto(logdir / "moto.log")
    timer = None if args.no_s3_timing else S3Timer(("127.0.0.1", moto.port))
    s3_endpoint = f"http://127.0.0.1:{timer.port}" if timer else moto.endpoint
    lines: list[str] = []
    ok = False
    t_start = time.monotonic()
    emulators: list[Emulator] = []
    functions: list[Function] = []

    def out(line: str):
        print(line, flush=True)
        lines.append(line)

    try:
        s3, _ = oc.boto_clients(moto.endpoint)
        s3.create_bucket(Bucket=BUCKET)
        mid = rundir / f"mid-{args.mid_width}.jpg"
        subprocess.run([str(rendition), "render", str(photo), "--spec", f"w={args.mid_width},fm=jpeg,q=85",
                        "-o", str(mid)], check=True, cwd=task_root, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
        sources = {
            "photo": ("originals/bench/photo.jpg", photo),
            "mid": ("originals/bench/mid.jpg", mid),
        }
        dims = {}
        for name, (key, path) in sources.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes(), ContentType="image/jpeg")
            dims[name] = jpeg_size(path.read_bytes())

        env = {k: v for k, v in os.environ.items() if not (k.startswith("RENDITION__") or k.startswith("AWS_"))}
        if args.allocator == "jemalloc":
            env.update(jemalloc_env())
        env.update({
            "MALLOC_ARENA_MAX": "2",
            "AWS_LAMBDA_FUNCTION_NAME": "_",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": args.memory,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_EC2_METADATA_DISABLED": "true",
            "RENDITION__S3__BUCKET": BUCKET,
            "RENDITION__S3__ENDPOINT": s3_endpoint,
            "RENDITION__S3__FORCE_PATH_STYLE": "true",
            "RENDITION__S3__REGION": "us-east-1",
            "RENDITION__URLS__SIGNING_KEYS": json.dumps([SIGNING_KEY]),
            "RENDITION__LOG__FORMAT": "json",
            "RENDITION__LOG__FILTER": "info",
        })
        # `rendition url`: the same settings, straight to moto (not through the timer).
        url_env = dict(env, RENDITION__S3__ENDPOINT=moto.endpoint)
        for k in ("LD_PRELOAD", "MALLOC_CONF"):
            url_env.pop(k, None)
        width = [args.width]

        def next_url(source: str) -> tuple[str, str, int]:
            w = width[0]
            width[0] += 1
            res = subprocess.run([str(rendition), "url", sources[source][0], "--spec", f"w={w},fm=webp"],
                                 env=url_env, cwd=task_root, check=True, stdout=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL)
            u = res.stdout.strip().splitlines()[-1]
            path, _, query = u.partition("?")
            return path, query, w

        results: dict[str, dict] = {}
        for source in ("photo", "mid"):
            res: dict = {"warm": [], "cold": [], "cold_init": [], "cold_line": [], "phases": {}, "out_bytes": []}
            results[source] = res
            # ---- warm: one process, one warm-up, then M misses.
            urls = [next_url(source) for _ in range(args.warm + 1)]
            em = Emulator(cargo_lambda, logdir / f"emulator-{source}-warm.log")
            emulators.append(em)
            fn = Function(lam, env, em, task_root, logdir / f"function-{source}-warm.log")
            functions.append(fn)
            fn.initialised(60)
            load = loadavg()
            for i, (path, query, w) in enumerate(urls):
                t0, t1, status, doc = em.invoke(url_event(path, query), args.timeout)
                res["out_bytes"].append(check_reply(status, doc, w))
                if i == 0:
                    res["warmup"] = (t1 - t0) * 1000
                    continue
                res["warm"].append((t1 - t0) * 1000)
                if timer:
                    reqs = timer.between(t0, t1)
                    s3_ms = 0.0
                    for r in reqs:
                        if r["t2"] is None:
                            continue
                        ms = (r["t2"] - r["t0"]) * 1000
                        s3_ms += ms
                        res["phases"].setdefault(phase_of(r), []).append(ms)
                    res["phases"].setdefault("S3 total", []).append(s3_ms)
                    res["phases"].setdefault("rest", []).append((t1 - t0) * 1000 - s3_ms)
                    # Split by the first S3 request (the handler has verified the URL and probes
                    # for the derivative) and the handler's "request" log line (its reply is
                    # built; base64 + JSON and the way back remain), at the line's own timestamp.
                    logged = fn.request_line(i + 1, 2.0)
                    starts = [r["t0"] for r in reqs]
                    if logged is not None and starts:
                        t_log = logged - WALL_OFFSET
                        first = min(starts)
                        split = res.setdefault("split", {})
                        split.setdefault("delivery", []).append((first - t0) * 1000)
                        split.setdefault("handler", []).append((t_log - first) * 1000)
                        split.setdefault("render", []).append((t_log - first) * 1000 - s3_ms)
                        split.setdefault("return", []).append((t1 - t_log) * 1000)
            res["warm_load"] = (load, loadavg())
            # References on the same process: a refused request (bad signature: 403, no S3, no
            # render) is the floor of emulator + runtime + handler; a hit (the derivative of the
            # last miss, now stored) costs one S3 GET.
            path, query, w = urls[-1]
            head, _, sig = query.partition("sig=")
            forged = f"{head}sig={'B' if sig.startswith('A') else 'A'}{sig[1:]}"
            for kind, q, want in (("floor", forged, 403), ("hit", query, 200)):
                res[kind] = []
                for _ in range(args.refs):
                    t0, t1, status, doc = em.invoke(url_event(path, q), args.timeout)
                    if status != 200 or doc.get("statusCode") != want:
                        raise RuntimeError(f"{kind}: answered {status} / {doc.get('statusCode')}, expected {want}")
                    res[kind].append((t1 - t0) * 1000)
            fn.stop()
            em.stop()
            w = res["warm"]
            out(f"lambda: {source:5s} warm  M={len(w)}  p50 {pct(w, 50):6.0f} ms  p99 {pct(w, 99):6.0f} ms  "
                f"(min {min(w):.0f}, mean {sum(w) / len(w):.0f}, max {max(w):.0f}; warm-up miss "
                f"{res['warmup']:.0f} ms)  load {res['warm_load'][0]} -> {res['warm_load'][1]}")
            if args.refs:
                out(f"lambda: {source:5s} warm  references, M={args.refs} each: refused request (403, no S3, no "
                    f"render) p50 {pct(res['floor'], 50):.1f} ms p99 {pct(res['floor'], 99):.1f} ms; hit (stored "
                    f"derivative, one S3 GET) p50 {pct(res['hit'], 50):.1f} ms p99 {pct(res['hit'], 99):.1f} ms")
            if timer:
                order = ["probe GET", "source GET", "PUT", "HEAD"]
                keys = order + sorted(k for k in res["phases"] if k not in order and k not in ("S3 total", "rest"))
                parts = [f"{k} {oc.median(res['phases'][k]):.1f}" for k in keys if k in res["phases"]]
                counts = {k: len(res["phases"][k]) for k in keys if k in res["phases"]}
                out(f"lambda: {source:5s} warm  phases, median ms per miss: {', '.join(parts)}; S3 total "
                    f"{oc.median(res['phases']['S3 total']):.1f} (p99 {pct(res['phases']['S3 total'], 99):.1f}); "
                    f"rest (verify, decode+resize+encode, response, runtime, emulator) "
                    f"{oc.median(res['phases']['rest']):.0f} (p99 {pct(res['phases']['rest'], 99):.0f}); "
                    f"S3 requests seen {counts}")
                sp = res.get("split", {})
                if sp:
                    out(f"lambda: {source:5s} warm  split, median (p99) ms per miss: invoke -> handler's first S3 "
                        f"request {oc.median(sp['delivery']):.1f} ({pct(sp['delivery'], 99):.1f}); handler to its "
                        f"'request' log line {oc.median(sp['handler']):.0f} ({pct(sp['handler'], 99):.0f}), of which "
                        f"not S3 (decode+resize+encode) {oc.median(sp['render']):.0f} ({pct(sp['render'], 99):.0f}); "
                        f"log line -> response at the client {oc.median(sp['return']):.1f} "
                        f"({pct(sp['return'], 99):.1f}) (base64 + JSON, runtime, emulator)")
                    # cargo-lambda's emulator sometimes sends the event of a /next response
                    # ~40 ms after its headers (two segments, Nagle + the runtime's delayed ACK):
                    # an emulator artefact, counted here and left out of a second p50/p99.
                    stalled = [i for i, d in enumerate(sp["delivery"]) if d > 20]
                    if stalled:
                        rest = [x for i, x in enumerate(w) if i not in stalled]
                        out(f"lambda: {source:5s} warm  {len(stalled)} of {len(w)} misses waited "
                            f"{oc.median([sp['delivery'][i] for i in stalled]):.0f} ms (median) for the emulator to "
                            f"deliver the event; without them (M={len(rest)}): p50 {pct(rest, 50):.0f} ms  p99 "
                            f"{pct(rest, 99):.0f} ms")
            # ---- cold: a fresh process (and emulator) per miss.
            urls = [next_url(source) for _ in range(args.cold)]
            load = loadavg()
            for i, (path, query, w) in enumerate(urls):
                em = Emulator(cargo_lambda, logdir / f"emulator-{source}-cold.log")
                emulators.append(em)
                time.sleep(0.2)
                holder: dict = {}
                fn = Function(lam, env, em, task_root, logdir / f"function-{source}-cold-{i:02d}.log")
                functions.append(fn)

                def call(h=holder, p=path, q=query, em=em):
                    try:
                        h["r"] = em.invoke(url_event(p, q), args.timeout)
                    except Exception as e:  # noqa: BLE001
                        h["e"] = e

                th = threading.Thread(target=call)
                th.start()
                th.join(args.timeout + 5)
                if "e" in holder or "r" not in holder:
                    raise RuntimeError(f"cold invocation {i}: {holder.get('e', 'timed out')!r}")
                _, t1, status, doc = holder["r"]
                res["out_bytes"].append(check_reply(status, doc, w))
                t_line, init_ms = fn.initialised(5)
                res["cold"].append((t1 - fn.t_start) * 1000)
                if timer:
                    res.setdefault("cold_s3", []).append(sum(
                        (r["t2"] - r["t0"]) * 1000 for r in timer.between(fn.t_start, t1) if r["t2"] is not None))
                res["cold_init"].append(init_ms)
                res["cold_line"].append((t_line - fn.t_start) * 1000)
                fn.stop()
                em.stop()
            res["cold_load"] = (load, loadavg())
            c = res["cold"]
            first = [a - b for a, b in zip(c, res["cold_line"], strict=True)]
            s3_cold = (f" (of which S3 p50 {pct(res['cold_s3'], 50):.1f} ms, first connections included)"
                       if res.get("cold_s3") else "")
            out(f"lambda: {source:5s} cold  M={len(c)}  p50 {pct(c, 50):6.0f} ms  p99 {pct(c, 99):6.0f} ms  "
                f"(min {min(c):.0f}, max {max(c):.0f}); init_ms (function's own) p50 "
                f"{pct(res['cold_init'], 50):.0f} p99 {pct(res['cold_init'], 99):.0f}; process start -> init line "
                f"p50 {pct(res['cold_line'], 50):.0f}; init line -> response p50 {pct(first, 50):.0f} p99 "
                f"{pct(first, 99):.0f}{s3_cold}  load {res['cold_load'][0]} -> {res['cold_load'][1]}")

        stored = oc.list_keys(s3, BUCKET, "derived/")
        expected = 2 * (args.warm + 1 + args.cold)
        if len(stored) != expected:
            raise RuntimeError(f"{len(stored)} derivatives stored, expected {expected}")
        (rundir / "results.json").write_text(json.dumps(results, indent=1))
        print("lambda: ---------------------------------------------------------------")
        alloc = " ".join(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("MALLOC_") or k == "LD_PRELOAD")
        print(f"lambda: setup  {lam_src} against cargo-lambda's Runtime API emulator "
              f"({cargo_lambda_version(cargo_lambda)}) on loopback, S3 on moto (own server"
              f"{', through a timing proxy' if timer else ''}); Function URL events through the Invoke API; "
              f"AWS_LAMBDA_FUNCTION_MEMORY_SIZE={args.memory} (not enforced here: 2 shared cores), {alloc}")
        print(f"lambda: misses signed explicit specs w=NNN,fm=webp, NNN {args.width}..{width[0] - 1} (one per "
              f"request, so each is a render); responses {min(results['photo']['out_bytes']) / 1000:.0f}-"
              f"{max(results['mid']['out_bytes'] + results['photo']['out_bytes']) / 1000:.0f} KB WebP; "
              f"{expected} derivatives stored in S3")
        for name, (key, path) in sources.items():
            w, h = dims[name]
            print(f"lambda: source {name:5s} {key}: {path.name}, {w}x{h}, {path.stat().st_size / 1e6:.2f} MB"
                  f"{' (progressive)' if is_progressive(path.read_bytes()) else ' (baseline)'}")
        for line in lines:
            print(line)
        print(f"lambda: wall   {time.monotonic() - t_start:.0f} s; logs {logdir}, results {rundir / 'results.json'}")
        print("lambda: result OK (a measurement)")
        ok = True
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print(f"lambda: ERROR {e!r}")
        print("lambda: result ERROR")
    finally:
        for fn in functions:
            if fn.proc.poll() is None:
                fn.stop()
        for em in emulators:
            if em.proc.poll() is None:
                em.stop()
        if timer:
            timer.close()
        moto.stop()
        for p in (rundir / "rendition", rundir / "rendition-lambda"):
            p.unlink(missing_ok=True)
    sys.exit(0 if ok else 1)


def cargo_lambda_version(binary: Path) -> str:
    try:
        return subprocess.run([str(binary), "lambda", "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's SOF marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    return 0, 0


def is_progressive(data: bytes) -> bool:
    i = 2
    while i + 4 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xC2:
            return True
        if marker in (0xC0, 0xC1):
            return False
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return False


if __name__ == "__main__":
    main()
