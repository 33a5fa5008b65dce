"""The local environment: moto server (DynamoDB, S3), the Codat sandbox, the functions under
`cargo lambda watch`, and the stream pump with the schedule sweep, all from template.yaml.

    python local/devenv.py demo            # the whole flow with the samples in examples/
    python local/devenv.py test [ARGS...]  # the test suite against this environment
    python local/devenv.py up              # start everything and wait (Ctrl-C stops it)

It stops everything it started when it ends."""

import argparse
import atexit
import base64
from http.client import HTTPConnection, HTTPException
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).parent))
import pump  # noqa: E402
import template as tpl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".local"
REGION = "us-east-1"
TABLE = "expense-sync-local"
# The same definition, watched by no function: store tests judge the store alone there, without
# the running functions reacting to their records. The sweep test has one of its own, since a
# sweep acts on every company in its table.
STORE_TEST_TABLE = TABLE + "-store-tests"
SWEEP_TEST_TABLE = TABLE + "-sweep-tests"
BUCKET = "expense-sync-receipts-local"
API_KEY = "c2FuZGJveC1hcGkta2V5"  # base64 text, as Codat keys are
# A fixed local-only Svix secret (whsec_ + base64 of 24 random bytes).
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"expense-sync-local-secret").decode()


def port(name, default):
    return int(os.environ.get(name, default))


MOTO_PORT = port("MOTO_PORT", 5055)
SANDBOX_PORT = port("SANDBOX_PORT", 4010)
WATCH_PORT = port("WATCH_PORT", 9000)
MOTO_URL = f"http://127.0.0.1:{MOTO_PORT}"
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
INVOKE_URL = f"http://127.0.0.1:{WATCH_PORT}"
FUNCTION_URL = f"{INVOKE_URL}/lambda-url"

# Set in the template only when the deployment uses legacy webhook rules.
OPTIONAL_LOCALLY = {"CODAT_LEGACY_WEBHOOK_AUTHORIZATION"}

AWS_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": MOTO_URL,
}

_children = []


def log(message):
    print(f"[devenv {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start(name, args, env=None, cwd=ROOT):
    STATE.mkdir(exist_ok=True)
    out = open(STATE / f"{name}.log", "w")
    process = subprocess.Popen(
        args, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    _children.append((name, process))
    return process


def stop_all():
    for name, process in reversed(_children):
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for name, process in _children:
        try:
            process.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    _children.clear()


def wait_for_port(name, port_number, process, seconds=600):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited early; see {STATE / (name + '.log')}:\n" + tail(name))
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port_number)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not listen on {port_number} within {seconds}s:\n" + tail(name))


def tail(name, lines=30):
    path = STATE / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def ensure_free(*ports):
    for p in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", p)) == 0:
                raise SystemExit(f"port {p} is in use: stop what runs there (or set MOTO_PORT/SANDBOX_PORT/WATCH_PORT)")


def function_env(template, sweep_poll_after, codat_api, codat_base_url=None):
    """What the deployed functions get from the template, resolved for local use."""
    env = {
        **AWS_ENV,
        "CODAT_API": codat_api,
        "TABLE_NAME": TABLE,
        "RECEIPTS_BUCKET": BUCKET,
        "CODAT_BASE_URL": codat_base_url or SANDBOX_URL,
        "CODAT_API_KEY": API_KEY,
        "CODAT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SWEEP_POLL_AFTER_SECONDS": str(sweep_poll_after),
        "SWEEP_REPORT_GRACE_SECONDS": str(sweep_poll_after * 3),
        "SWEEP_SYNC_DEADLINE_SECONDS": str(sweep_poll_after * 20),
        # As deployed: above the longest claiming function's timeout. Locally nothing enforces
        # those timeouts, so it must not be shorter.
        "SWEEP_CLAIM_TIMEOUT_SECONDS": "360",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        "METRICS_NAMESPACE": "expense-sync-local",
    }
    # Every variable the template sets must have a local value (or a local stand-in:
    # secrets come straight from the environment instead of Secrets Manager).
    for fn in tpl.functions(template):
        for name in fn.environment:
            local_name = name.removesuffix("_SECRET_ARN")
            if name not in env and local_name not in env and local_name not in OPTIONAL_LOCALLY:
                raise SystemExit(f"{fn.binary} reads {name}, which devenv does not set")
    return env


def provision(template):
    session = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION
    )
    cfg = Config(retries={"max_attempts": 3})
    dynamodb = session.client("dynamodb", endpoint_url=MOTO_URL, config=cfg)
    s3 = session.client("s3", endpoint_url=MOTO_URL, config=cfg)
    streams = session.client("dynamodbstreams", endpoint_url=MOTO_URL, config=cfg)
    definition, ttl = tpl.table_definition(template)
    table = dynamodb.create_table(TableName=TABLE, **definition)["TableDescription"]
    for name in (STORE_TEST_TABLE, SWEEP_TEST_TABLE):
        dynamodb.create_table(TableName=name, **definition)
    for name in (TABLE, STORE_TEST_TABLE, SWEEP_TEST_TABLE):
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    s3.create_bucket(Bucket=BUCKET)
    return table["LatestStreamArn"], streams


def build(release=False):
    log("building the workspace (first build takes a few minutes)")
    subprocess.run(["cargo", "build", "--workspace", "--bins", *(["--release"] if release else [])], cwd=ROOT, check=True)


def up(sweep_seconds, sweep_poll_after, sync_delay_ms, codat_api, codat_base_url=None, webhook_url=None,
       release=False, concurrency=4):
    """`codat_base_url` and `webhook_url` (default: the sandbox, the webhook function) let a
    caller put something between the functions and the sandbox, both ways (local/chaos.py).
    `release`: optimised builds, as deployed (local/load.py); `concurrency`: instances per
    function, as Lambda runs concurrent invocations side by side."""
    template = tpl.load(ROOT / "template.yaml")
    ensure_free(MOTO_PORT, SANDBOX_PORT, WATCH_PORT)
    env = function_env(template, sweep_poll_after, codat_api, codat_base_url)
    STATE.mkdir(exist_ok=True)
    (STATE / "dlq.jsonl").write_text("")
    build(release)
    profile = "release" if release else "debug"

    moto = start("moto", [sys.executable, str(ROOT / "local/moto_server.py"), "127.0.0.1", str(MOTO_PORT)])
    wait_for_port("moto", MOTO_PORT, moto, 60)
    stream_arn, streams = provision(template)
    log(f"moto server on {MOTO_URL}: table {TABLE}, bucket {BUCKET}")

    sandbox = start(
        "sandbox",
        [str(ROOT / "target" / profile / "codat-sandbox")],
        {
            "SANDBOX_ADDR": f"127.0.0.1:{SANDBOX_PORT}",
            "CODAT_API_KEY": API_KEY,
            "CODAT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SANDBOX_WEBHOOK_URL": webhook_url or f"{FUNCTION_URL}/webhook-receipt/webhooks/codat",
            "SANDBOX_SYNC_DELAY_MS": str(sync_delay_ms),
        },
    )
    wait_for_port("sandbox", SANDBOX_PORT, sandbox, 60)
    log(f"Codat sandbox on {SANDBOX_URL}")

    env_file = STATE / "functions.env"
    env_file.write_text("".join(f'{k}="{v}"\n' for k, v in env.items()))
    watch = start(
        "functions",
        ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1",
         "--invoke-port", str(WATCH_PORT), "--env-file", str(env_file), "--concurrency", str(concurrency),
         *(["--release"] if release else [])],
        env,
    )
    wait_for_port("functions", WATCH_PORT, watch, 600)
    log(f"functions under cargo lambda watch on {INVOKE_URL}")

    triggers = [t for fn in tpl.functions(template) for t in fn.stream_triggers]
    the_pump = pump.Pump(streams, stream_arn, REGION, triggers, INVOKE_URL, STATE / "dlq.jsonl", log)
    the_pump.start()
    scheduled = json.loads((ROOT / "tests/fixtures/example-eventbridge-schedule.json").read_text())
    for fn in tpl.functions(template):
        for _ in fn.schedules:
            pump.Schedule(fn.binary, sweep_seconds, INVOKE_URL, scheduled, the_pump.stop, log).start()
    log(f"stream pump: {', '.join(f'{t.function} (batch {t.batch_size}, {t.parallelization_factor} at once, {len(t.filters)} filters)' for t in triggers)}; "
        f"sweep every {sweep_seconds}s; new approvals use CODAT_API={codat_api}")
    return {**env, "STORE_TEST_TABLE": STORE_TEST_TABLE, "SWEEP_TEST_TABLE": SWEEP_TEST_TABLE, "EXPENSE_SYNC_API": FUNCTION_URL, "SANDBOX_URL": SANDBOX_URL, "INVOKE_URL": INVOKE_URL,
            "CODAT_API_KEY": API_KEY, "DLQ_PATH": str(STATE / "dlq.jsonl")}, the_pump


# ---- the demo ----


def http(method, url, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def post_approval(company, body, timeout):
    """POSTs an approval's raw body to approval-intake on a fresh connection: (status or None
    when nothing came back, the first 300 characters of the answer or the error, seconds)."""
    connection = HTTPConnection("127.0.0.1", WATCH_PORT, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request("POST", f"/lambda-url/approval-intake/companies/{company}/expenses", body=body,
                           headers={"content-type": "application/json"})
        response = connection.getresponse()
        status, text = response.status, response.read()[:300].decode("utf-8", "replace")
    except (OSError, HTTPException) as err:
        status, text = None, f"{type(err).__name__}: {err}"
    finally:
        connection.close()
    return status, text, time.monotonic() - started


# Every kind an approval holds, in the order intake stores them.
KINDS = ("expenses", "reimbursableExpenses", "transfers", "adjustments")


def load_examples(codat_api):
    """The samples for the API: v1 takes the card expenses as they are; the current API also
    takes the reimbursable expenses, transfers and adjustments (kinds of their own there)."""
    spec = json.loads((ROOT / "examples/approvals.json").read_text())
    batch = {"expenses": spec["expenses"]}
    if codat_api == "expenses":
        for kind in KINDS[1:]:
            batch[kind] = spec[kind]
    for item in items_of(batch):
        receipt = item.get("receipt")
        if receipt:
            receipt["data"] = base64.b64encode((ROOT / "examples" / receipt.pop("path")).read_bytes()).decode()
    return spec["companyId"], batch


def items_of(batch):
    return [item for kind in KINDS for item in batch.get(kind, [])]


def demo(codat_api):
    company, batch = load_examples(codat_api)
    count = len(items_of(batch))
    log(f"approving {count} items for company {company} (CODAT_API={codat_api})")
    status, answer = http("POST", f"{FUNCTION_URL}/approval-intake/companies/{company}/expenses", batch, timeout=300)
    log(f"approval intake answered {status}")
    if status >= 300:
        print(json.dumps(answer, indent=2))
    ids = [e["id"] for e in items_of(batch)]
    seen = {}
    deadline = time.time() + 180
    final = {"uploaded", "recordedWithoutAttachment", "failed", "uploadFailed", "unconfirmed"}
    views = {}
    while time.time() < deadline:
        for expense_id in ids:
            code, view = http("GET", f"{FUNCTION_URL}/expense-status/companies/{company}/expenses/{expense_id}")
            if code != 200:
                continue
            views[expense_id] = view
            if seen.get(expense_id) != view["status"]:
                seen[expense_id] = view["status"]
                detail = view.get("failure", {}) or {}
                log(f"expense {expense_id}: {view['status']}" + (f" ({detail.get('reason')})" if detail else ""))
        if len(views) == len(ids) and all(v["status"] in final for v in views.values()):
            break
        time.sleep(0.5)
    print()
    print(f"{'expense':38} {'kind':12} {'receipt':16} {'status':25} {'dataset (v1)':38} {'sync':38} {'attachment'}")
    for expense_id in ids:
        v = views.get(expense_id, {})
        receipt = (v.get("receipt") or {}).get("fileName", "none") if v else "?"
        print(f"{expense_id:38} {v.get('kind', '?'):12} {receipt:16} "
              f"{v.get('status', '?'):25} {str(v.get('datasetId') or '-'):38} {str(v.get('syncId')):38} "
              f"{v.get('attachmentId') or ''}")
    # Done: a receipt uploaded where Codat takes one, recorded without one where it does not.
    def finished(view):
        return view.get("status") == ("uploaded" if view.get("receipt") else "recordedWithoutAttachment")
    done = len(views) == len(ids) and all(finished(v) for v in views.values())
    api = next(iter(views.values()), {}).get("codatApi", "?")
    print()
    print(f"every item in the books through Codat API {api!r}: receipts uploaded, "
          "transfers and adjustments recorded (Codat attaches no file to them)" if done
          else "NOT every item reached its end: see .local/*.log")
    return 0 if done else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["demo", "test", "up"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fast = options.command == "test"
    codat_api = os.environ.get("CODAT_API") or "expenses"
    if codat_api not in ("expenses", "v1"):
        raise SystemExit(f"CODAT_API is {codat_api!r}; it must be expenses or v1")
    if options.command == "test":
        return test_both_apis(options.args)

    env, the_pump = up(sweep_seconds=2 if fast else 10, sweep_poll_after=3 if fast else 30,
                       sync_delay_ms=300 if fast else 1500, codat_api=codat_api)
    try:
        if options.command == "demo":
            return demo(codat_api)
        log("everything is up; Ctrl-C stops it")
        threading.Event().wait()
    except KeyboardInterrupt:
        return 130
    finally:
        the_pump.close()
    return 0


def test_both_apis(args):
    """The whole suite with the functions on the current API, then the tests that need the
    stack again with them on v1 (unit tests do not depend on it and run once)."""
    apis = [os.environ["CODAT_API"]] if os.environ.get("CODAT_API") else ["expenses", "v1"]
    failed = 0
    for index, codat_api in enumerate(apis):
        env, the_pump = up(sweep_seconds=2, sweep_poll_after=3, sync_delay_ms=300, codat_api=codat_api)
        try:
            which = "all" if index == 0 else "only"
            command = ["cargo", "nextest", "run", "--workspace", "--run-ignored", which, "--no-fail-fast", *args]
            log(f"CODAT_API={codat_api}: {' '.join(command)}")
            failed |= subprocess.run(command, cwd=ROOT, env={**os.environ, **env}).returncode
        finally:
            the_pump.close()
            stop_all()
    return failed


if __name__ == "__main__":
    sys.exit(main())
