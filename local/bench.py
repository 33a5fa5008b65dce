"""Benchmarks, printed as tables:

1. binary size of each function (native release build, and the arm64 `bootstrap` of
   `sam build` when .aws-sam/build exists);
2. cold start and peak memory of each release binary: time from exec to its first request
   for an event (init: config, clients, credentials), to its first answer, and VmHWM, under a
   fake Lambda runtime API, against the local moto and sandbox; each function's init also as
   a ratio to that of `hello-lambda` (bench/hello-lambda: `lambda_http` answering 200, same
   release profile), run in turn with the functions so both see the same machine;
3. Codat calls and DynamoDB requests per expense over a whole flow of N expenses, from the
   functions' own per-invocation usage logs and the sandbox's call log.

    python local/bench.py [--expenses N] [--runs R]
"""

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import devenv  # noqa: E402
import template as tpl  # noqa: E402

ROOT = devenv.ROOT
FIXTURES = ROOT / "tests/fixtures"
# The floor: a lambda_http binary doing nothing, built with the same release profile.
HELLO = "hello-lambda"
EVENTS = {
    HELLO: "apigw-v2-expense-status.json",
    "approval-intake": "apigw-v2-approve-base64.json",
    "expense-status": "apigw-v2-expense-status.json",
    "webhook-receipt": "apigw-v2-webhook.json",
    "sync-initiation": "example-eventbridge-schedule.json",
    "attachment-upload": "example-dynamodb-event.json",
}


class FakeRuntime:
    """The Lambda runtime API for one invocation: hands out `event`, records the timings."""

    def __init__(self, event):
        self.event = json.dumps(event).encode()
        self.first_next = None
        self.answered = None
        self.served = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - the runtime API's verb
                if outer.first_next is None:
                    outer.first_next = time.perf_counter()
                if outer.served:
                    time.sleep(30)  # the second /next waits, as Lambda freezes the sandbox
                    return
                outer.served = True
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Content-Length", str(len(outer.event)))
                self.end_headers()
                self.wfile.write(outer.event)

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                outer.answered = time.perf_counter()
                self.send_response(202)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"


def cold_start(binary, env, event):
    runtime = FakeRuntime(event)
    full_env = {
        "PATH": os.environ["PATH"],
        **env,
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "AWS_LAMBDA_FUNCTION_NAME": binary.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "RUST_LOG": "warn",
    }
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = started + 30
    while runtime.answered is None and time.perf_counter() < deadline and process.poll() is None:
        time.sleep(0.001)
    peak_kib = None
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
    except FileNotFoundError:
        pass
    process.kill()
    process.wait()
    runtime.server.shutdown()
    if runtime.answered is None:
        raise RuntimeError(f"{binary.name} did not answer its first event")
    return (runtime.first_next - started) * 1000, (runtime.answered - started) * 1000, peak_kib


def sizes(binaries):
    print("\n## Binary size\n")
    print(f"{'function':20} {'x86_64 release':>16} {'arm64 bootstrap (sam build)':>28}")
    for name in binaries:
        native = ROOT / "target/release" / name
        sam = next((p / "bootstrap" for p in (ROOT / ".aws-sam/build").glob("*") if (p / "bootstrap").exists()
                    and _sam_binary(p) == name), None) if (ROOT / ".aws-sam/build").exists() else None
        arm = f"{sam.stat().st_size / 1e6:.2f} MB" if sam else "not built"
        print(f"{name:20} {native.stat().st_size / 1e6:>13.2f} MB {arm:>28}")


def _sam_binary(build_dir):
    template = tpl.load(ROOT / "template.yaml")
    resource = template["Resources"].get(build_dir.name, {})
    return resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")


def cert_file():
    """The CA bundle the functions are told to read (template Globals, `SSL_CERT_FILE`), or
    this machine's own bundle where that path does not exist (it is provided.al2023's)."""
    template = tpl.load(ROOT / "template.yaml")
    deployed = template["Globals"]["Function"]["Environment"]["Variables"]["SSL_CERT_FILE"]
    for path in (deployed, "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/cert.pem"):
        if Path(path).exists():
            return path
    raise SystemExit("no CA bundle on this machine for SSL_CERT_FILE")


def cold_starts(binaries, env, runs):
    env = {**env, "SSL_CERT_FILE": cert_file()}
    print(f"\n## Cold start and peak memory (release, x86_64, median of {runs} runs, in turn)\n")
    print(f"SSL_CERT_FILE={env['SSL_CERT_FILE']} (as deployed, or this machine's bundle)\n")
    print(f"{'function':20} {'init (ms)':>10} {'x hello':>8} {'first answer (ms)':>18} {'peak RSS (MiB)':>15}")
    names = [HELLO, *binaries]
    events = {name: json.loads((FIXTURES / EVENTS[name]).read_text()) for name in names}
    results = {name: [] for name in names}
    # Round-robin, so a busy moment of the machine falls on every binary alike.
    for _ in range(runs):
        for name in names:
            results[name].append(cold_start(ROOT / "target/release" / name, env, events[name]))
    floor = statistics.median(r[0] for r in results[HELLO])
    for name in names:
        init = statistics.median(r[0] for r in results[name])
        first = statistics.median(r[1] for r in results[name])
        peak = max(r[2] or 0 for r in results[name]) / 1024
        print(f"{name:20} {init:>10.1f} {init / floor:>8.2f} {first:>18.1f} {peak:>15.1f}")


def flow(expenses, codat_api):
    company = str(uuid.uuid4())
    _, sample = devenv.load_examples(codat_api)
    base = sample["expenses"]
    batch = []
    for i in range(expenses):
        expense = json.loads(json.dumps(base[i % len(base)]))
        expense["id"] = str(uuid.uuid4())
        batch.append(expense)
    log_path = devenv.STATE / "functions.log"
    offset = log_path.stat().st_size
    status, answer = devenv.http("POST", f"{devenv.FUNCTION_URL}/approval-intake/companies/{company}/expenses",
                                 {"expenses": batch}, timeout=300)
    assert status == 202, answer
    ids = [e["id"] for e in batch]
    deadline = time.time() + 180
    while time.time() < deadline:
        views = [devenv.http("GET", f"{devenv.FUNCTION_URL}/expense-status/companies/{company}/expenses/{i}")[1] for i in ids]
        if all(v and v.get("status") == "uploaded" for v in views):
            break
        time.sleep(0.5)
    else:
        raise SystemExit("the benchmark flow did not finish")
    time.sleep(1)  # let the last usage lines reach the log
    per_function = {}
    with open(log_path, errors="replace") as log:
        log.seek(offset)
        for line in log:
            if '"invocation usage"' not in line:
                continue
            fields = json.loads(line[line.index("{"):])["fields"]
            usage = per_function.setdefault(fields["function"], [0, 0, 0])
            usage[0] += 1
            usage[1] += fields["dynamodb_requests"]
            usage[2] += fields["codat_calls"]
    # expense-status answers the benchmark's own polling: the user watching, not the flow.
    flow_usage = [u for name, u in per_function.items() if name != "expense-status"]
    dynamodb = sum(u[1] for u in flow_usage)
    codat = sum(u[2] for u in flow_usage)
    _, calls = devenv.http("GET", f"{devenv.SANDBOX_URL}/_sandbox/calls")
    sandbox = [c for c in calls if c["path"].startswith(f"/companies/{company}/")]
    print(f"\n## One flow of {expenses} expenses on CODAT_API={codat_api} (approval to uploaded)\n")
    print("Counted over every invocation while this flow ran (the schedule sweep included; the status")
    print("polling that watched it, expense-status, is listed but not counted in the totals).")
    print(f"{'Codat calls (sandbox log, this company)':45} {len(sandbox):>6}  = {len(sandbox) / expenses:.2f} per expense")
    print(f"{'Codat calls (functions usage logs)':45} {codat:>6}  = {codat / expenses:.2f} per expense")
    print(f"{'DynamoDB requests (functions usage logs)':45} {dynamodb:>6}  = {dynamodb / expenses:.2f} per expense")
    print(f"\n{'function':20} {'invocations':>12} {'DynamoDB requests':>18} {'Codat calls':>12}")
    for name, (invocations, requests, calls_made) in sorted(per_function.items()):
        print(f"{name:20} {invocations:>12} {requests:>18} {calls_made:>12}")
    print("\nCodat calls by endpoint (sandbox log):")
    kinds = {}
    for call in sandbox:
        # Sync for Expenses paths, and the company's connections (read before uploads).
        path = call["path"].split(f"/companies/{company}/", 1)[1].removeprefix("sync/expenses/")
        kind = f"{call['method']} " + ("syncs/{id}/transactions/{id}/attachments" if path.endswith("/attachments")
                                       else "syncs/{id}/" + path.rsplit("/", 1)[1] if path.startswith("syncs/") else path)
        kinds[kind] = kinds.get(kind, 0) + 1
    for kind, n in sorted(kinds.items()):
        print(f"  {kind:60} {n:>4}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expenses", type=int, default=20)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--api", choices=["expenses", "v1", "both"], default="both",
                        help="the Codat API of the measured flow (default: one flow on each)")
    options = parser.parse_args()
    apis = ["expenses", "v1"] if options.api == "both" else [options.api]
    subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT, check=True)
    binaries = sorted(fn.binary for fn in tpl.functions(tpl.load(ROOT / "template.yaml")))
    sizes([HELLO, *binaries])
    import atexit

    atexit.register(devenv.stop_all)
    for index, codat_api in enumerate(apis):
        env, the_pump = devenv.up(sweep_seconds=10, sweep_poll_after=30, sync_delay_ms=300, codat_api=codat_api)
        try:
            if index == 0:
                cold_starts(binaries, {k: v for k, v in env.items() if not k.startswith("RUST_LOG")}, options.runs)
            flow(options.expenses, codat_api)
        finally:
            the_pump.close()
            devenv.stop_all()


if __name__ == "__main__":
    main()
