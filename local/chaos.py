"""Faults at volume: hundreds of approvals from many companies through the local stack while
Codat fails, loses answers and its webhooks misbehave, and function invocations are killed.

    python local/chaos.py [--expenses N] [--companies C] [--seed S] [--profile default|high]
                          [--settle SECONDS] [--workers W]
    python local/chaos.py --ci        # small, fixed seed, finishes in a few minutes (CI)

It starts the whole local stack with `devenv.up` (ports from MOTO_PORT / SANDBOX_PORT /
WATCH_PORT; the two proxies below take SANDBOX_PORT+1 and +2) and stops it at the end. The
functions reach the sandbox only through a **Codat proxy**, and the sandbox delivers its
webhooks only to a **webhook proxy**, both in this file:

Codat proxy: for every call a function makes it draws, from the seeded RNG, one outcome with
the profile's probabilities, so the rate is per call (the sandbox's own faults are count-based
and first-match: the proxy registers a one-shot sandbox fault for exactly that method and path
just before forwarding the call, so the sandbox applies it and its call log records it,
`status` against `handledStatus`):
  429       429 with Retry-After (1-2 s), nothing done
  503       503, nothing done
  5xx       (high profile) 500, 502 or 504, nothing done
  lost      Codat acts, then the answer is lost: a sandbox `afterEffect` fault answering
            500/502/503/504, or (a third of them) the proxy closes the connection without
            relaying Codat's answer
  kill      Codat acts and answers; before the answer reaches the function, the proxy
            SIGKILLs the function process that made the call (found by the call's TCP source
            port in /proc; only a process whose executable is one of the workspace's function
            binaries): the invocation dies between the Codat call and the write recording it.
            Creates, transfer PUTs, sync transaction reads and (not in --ci) attachment uploads.
All calls are eligible (creates of every kind, the transfer PUT, sync status / latest / list /
transactions reads, attachment uploads, connections).

Webhook proxy: answers the sandbox 200 at once (as a queue would) and then, per delivery,
drops it (never forwarded), or forwards it byte for byte (headers and body: the Svix signature
stays valid) after an optional delay (2-25 s, which reorders it against later ones) and, when
duplicated, once or twice more at other times. A forward the function refuses is retried
after 1 s and 5 s, as the sandbox itself would.

The load: `--companies` companies, each with approvals of 1-6 items mixing card expenses (each
with a receipt of unique bytes), reimbursable expenses, transfers and adjustments; ~3% are
card expenses whose lines total zero, which Codat (the sandbox) refuses as a ValidationError
(the only legitimate `failed`). 5% of approvals are posted twice concurrently, 10% replayed
exactly later. A caller's retry: an answer of 500 or none is re-posted (up to 6 times).

Invariants, checked from the sandbox's call log and DynamoDB after everything settles:
  terminal            every expense is terminal (uploaded, recordedWithoutAttachment, failed,
                      uploadFailed, unconfirmed) within --settle seconds
  posted-once         no transaction id was accepted by Codat twice (a create of any kind or
                      the transfer PUT with handledStatus 2xx); re-sends Codat refused as a
                      duplicate id are counted apart (information, not a violation)
  attached-once       no receipt was attached twice (attachment POSTs with handledStatus 2xx)
  receipt-bytes       every `uploaded` expense has exactly one accepted attachment, with the
                      sha256 of the receipt approved
  unconfirmed-real    an `unconfirmed` expense had an answer really lost (Codat acted: the
                      sandbox's handledStatus 2xx while the function heard a fault, or the
                      proxy dropped/killed it), and Codat's state could not decide it: for an
                      upload always (no attachment list), for a create only if the reason says
                      Codat's sync lists could not be read. An upload answered 5xx that Codat did
                      not act on is counted apart: the product cannot tell it from a lost answer
  failed-real         a `failed` expense was refused by Codat: a zero-total expense (the sync's
                      ValidationError) or a create the sandbox itself answered 4xx with no
                      earlier accepted create; an `uploadFailed` one had an upload the sandbox
                      answered 4xx
  outcome-kind        transfers and adjustments never `uploaded`, receipts never
                      `recordedWithoutAttachment` (the sandbox lists no connections)
  valid-accepted      no approval answered 400/409 (all are valid)

It prints the counts, the measured fault rates and every violation with its ids, and exits
non-zero on any violation.
"""

import argparse
import atexit
import base64
import hashlib
import http.client
import http.server
import json
import os
import random
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).parent))
import devenv  # noqa: E402
import pump  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"uploaded", "recordedWithoutAttachment", "failed", "uploadFailed", "unconfirmed"}
FUNCTIONS = {"approval-intake", "attachment-upload", "expense-status", "sync-initiation", "webhook-receipt"}
PNG = (ROOT / "examples/receipts/taxi.png").read_bytes()
PDF = (ROOT / "examples/receipts/hotel.pdf").read_bytes()

# Per-call probabilities. lost/kill apply after Codat acted.
PROFILES = {
    "default": {"429": 0.10, "503": 0.10, "5xx": 0.00, "lost": 0.05, "kill": 0.02,
                "wh_drop": 0.30, "wh_dup": 0.30, "wh_delay": 0.30},
    "high": {"429": 0.10, "503": 0.15, "5xx": 0.15, "lost": 0.10, "kill": 0.03,
             "wh_drop": 0.50, "wh_dup": 0.30, "wh_delay": 0.30},
}
CI = {"expenses": 60, "companies": 6, "seed": 8, "settle": 480, "profile": "default"}


def log(message):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def new_id(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# ---- what a call is ----


def call_class(method, path):
    """The kind of Codat call, for rates and kill eligibility."""
    if "/attachments" in path:
        return "attachment"
    if method == "PUT" and "/transfer-transactions/" in path:
        return "create-transfer"
    if method == "POST" and path.endswith("/expense-transactions"):
        return "create-expense"
    if method == "POST" and path.endswith("/reimbursable-expense-transactions"):
        return "create-reimbursable"
    if method == "POST" and path.endswith("/adjustment-transactions"):
        return "create-adjustment"
    if method == "POST" and path.endswith("/syncs"):
        return "initiate-v1"
    if path.endswith("/transactions"):
        return "sync-transactions"
    if path.endswith("/latest/status") or path.endswith("/list/status") or path.endswith("/lastSuccessful/status"):
        return "sync-lists"
    if path.endswith("/status"):
        return "sync-status"
    if path.endswith("/connections"):
        return "connections"
    return "other"


KILLABLE = {"create-expense", "create-reimbursable", "create-adjustment", "create-transfer", "sync-transactions",
            "attachment"}


def ids_in(method, path, body):
    """Transaction ids a call carries (creates: the body's items; transfer PUT and attachment:
    the path)."""
    cls = call_class(method, path)
    if cls == "attachment":
        return [path.split("/transactions/")[1].split("/")[0].lower()]
    if cls == "create-transfer":
        return [path.rsplit("/", 1)[-1].lower()]
    if cls.startswith("create-"):
        try:
            items = json.loads(body) if isinstance(body, (bytes, str)) else body
        except ValueError:
            return []
        if isinstance(items, dict):
            items = items.get("items") or []
        return [i["id"].lower() for i in items or [] if isinstance(i, dict) and isinstance(i.get("id"), str)]
    return []


def company_of(path):
    parts = path.split("/")
    return parts[2].lower() if len(parts) > 2 and parts[1] == "companies" else None


# ---- the Codat proxy ----


def socket_pid(client_port, server_port):
    """The pid owning the TCP connection 127.0.0.1:client_port -> server_port (from /proc)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, remote = cols[1], cols[2]
            if int(local.rsplit(":", 1)[1], 16) == client_port and int(remote.rsplit(":", 1)[1], 16) == server_port:
                inode = cols[9]
                break
        if inode:
            break
    if not inode:
        return None
    target = f"socket:[{inode}]"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return int(pid)
        except OSError:
            continue
    return None


RESPAWNED = []  # (binary, Popen) started by this script after a kill
KILLED_AT = defaultdict(list)  # binary -> monotonic times of its kills


def unless_killed(binary, call, *args):
    """Runs `call(*args)` in a thread; if `binary` is killed meanwhile, returns None at once.

    cargo lambda never answers an invocation whose process died: its caller would wait for its
    own timeout. Lambda answers it at once (`Runtime.ExitError`), and since each function runs
    one invocation at a time here, the one in flight when its process is killed is the dead one."""
    started = time.monotonic()
    result = []
    worker = threading.Thread(target=lambda: result.append(call(*args)), daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.25)
        if worker.is_alive() and any(t >= started for t in KILLED_AT[binary]):
            return None
    return result[0] if result else None


def kill_aware_invoke(original):
    def invoke(invoke_url, function, payload, timeout=130):
        answer = unless_killed(function, original, invoke_url, function, payload, timeout)
        if answer is None:
            return False, {"errorType": "Runtime.ExitError", "errorMessage": "RequestId: chaos Error: Runtime exited "
                           "with error: signal: killed (the process was killed by local/chaos.py)"}
        return answer
    return invoke


def process_image(pid):
    """What it takes to start a process like `pid` again: executable, cwd, environment."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(kv.decode().split("=", 1) for kv in environ if b"=" in kv)
    return os.readlink(f"/proc/{pid}/exe"), os.readlink(f"/proc/{pid}/cwd"), env


def stop_respawned():
    for _, process in RESPAWNED:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def function_binary(pid):
    """The function binary a pid runs, if it is one of ours (under this checkout's target dir)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    target = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target")
    name = os.path.basename(exe)
    return name if name in FUNCTIONS and exe.startswith(os.path.realpath(target)) else None


class Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection", "te",
       "trailer", "upgrade"}


def read_body(handler):
    if "chunked" in (handler.headers.get("transfer-encoding") or "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("content-length") or 0))


class CodatProxy:
    def __init__(self, port, sandbox_port, rates, rng, kill_classes):
        self.port, self.sandbox_port, self.rates, self.rng = port, sandbox_port, rates, rng
        self.kill_classes = kill_classes
        self.lock = threading.Lock()
        self.decisions = defaultdict(Counter)  # class -> outcome -> n
        self.lost = []  # {"cls", "company", "ids", "how", "status"}: Codat acted, the answer was lost
        self.kills = []  # {"cls", "company", "ids", "pid", "binary", "at"}
        self.kill_misses = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy.handle(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

        self.server = Threaded(("127.0.0.1", port), Handler)

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True, name="codat-proxy").start()

    def respawn(self, binary, image):
        """`cargo lambda watch` does not start a function again after its process died (checked:
        it logs ForceStop and leaves every later invocation waiting). Lambda would start a new
        instance: so does this, with the dead one's environment, polling the same runtime API."""
        exe, cwd, env = image
        env["AWS_LAMBDA_INSTANCE_ID"] = str(uuid.uuid4())
        out = open(devenv.STATE / "functions-respawned.log", "a")
        process = subprocess.Popen([exe], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        with self.lock:
            for _, earlier in RESPAWNED:
                earlier.poll()  # reap the ones killed since
            RESPAWNED.append((binary, process))

    def decide(self, cls):
        r = self.rates
        with self.lock:
            u = self.rng.random()
            edges = [("lost", r["lost"]), ("429", r["429"]), ("503", r["503"]), ("5xx", r["5xx"])]
            outcome, acc = "pass", 0.0
            for name, p in edges:
                acc += p
                if u < acc:
                    outcome = name
                    break
            if outcome == "pass" and cls in self.kill_classes and self.rng.random() < r["kill"]:
                outcome = "kill"
            detail = {
                "429": lambda: {"status": 429, "retryAfter": self.rng.choice([1, 1, 2])},
                "503": lambda: {"status": 503},
                "5xx": lambda: {"status": self.rng.choice([500, 502, 504])},
                "lost": lambda: {"status": self.rng.choice([500, 502, 503, 504]), "afterEffect": True,
                                 "drop": self.rng.random() < 1 / 3},
            }.get(outcome, dict)()
            self.decisions[cls][outcome] += 1
            return outcome, detail

    def sandbox(self, method, path, body=b"", headers=None, timeout=60):
        connection = http.client.HTTPConnection("127.0.0.1", self.sandbox_port, timeout=timeout)
        try:
            connection.request(method, path, body=body or None, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def add_fault(self, method, path, detail):
        fault = {"method": method, "pathContains": path, "times": 1,
                 **{k: v for k, v in detail.items() if k in ("status", "retryAfter", "afterEffect")}}
        self.sandbox("POST", "/_sandbox/faults", json.dumps(fault).encode(), {"content-type": "application/json"})

    def handle(self, handler):
        method, target = handler.command, handler.path
        path = target.split("?", 1)[0]
        body = read_body(handler)
        cls = call_class(method, path)
        outcome, detail = self.decide(cls)
        if outcome not in ("pass", "kill"):
            self.add_fault(method, path, detail)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP}
        try:
            status, response_headers, response_body = self.sandbox(method, target, body, headers)
        except OSError as err:
            handler.send_error(502, f"proxy: sandbox unreachable: {err}")
            return
        lost_record = {"cls": cls, "company": company_of(path), "ids": ids_in(method, path, body), "path": path,
                       "at": time.time()}
        if outcome == "lost":
            with self.lock:
                self.lost.append({**lost_record, "how": "dropped connection" if detail["drop"] else
                                  f"answered {detail['status']} after acting"})
            if detail["drop"]:
                handler.close_connection = True
                try:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
        if outcome == "kill":
            pid = socket_pid(handler.client_address[1], self.port)
            binary = function_binary(pid) if pid else None
            if binary:
                respawn = process_image(pid)
                os.kill(pid, signal.SIGKILL)
                KILLED_AT[binary].append(time.monotonic())
                self.respawn(binary, respawn)
                with self.lock:
                    self.kills.append({**lost_record, "pid": pid, "binary": binary})
                    self.lost.append({**lost_record, "how": f"{binary} killed after Codat answered {status}"})
                handler.close_connection = True
                return
            with self.lock:
                self.kill_misses.append({**lost_record, "pid": pid})
        handler.send_response(status)
        for name, value in response_headers:
            if name.lower() not in HOP:
                handler.send_header(name, value)
        handler.send_header("content-length", str(len(response_body)))
        handler.end_headers()
        handler.wfile.write(response_body)


# ---- the webhook proxy ----


class WebhookProxy:
    def __init__(self, port, target_url, rates, rng):
        self.port, self.target, self.rates, self.rng = port, target_url, rates, rng
        self.lock = threading.Lock()
        self.arrived = 0
        self.stats = Counter()
        self.delivered_order = []  # arrival numbers in the order forwarded
        self.answers = Counter()
        self.dropped = []  # (company, syncId)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = read_body(self)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                answer = b"{}"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                proxy.schedule(headers, body)

        self.server = Threaded(("127.0.0.1", port), Handler)

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True, name="webhook-proxy").start()

    def schedule(self, headers, body):
        r = self.rates
        with self.lock:
            self.arrived += 1
            number = self.arrived
            self.stats["received"] += 1
            # Three independent draws per delivery, so each rate holds over all deliveries.
            drop, delay_it, dup = (self.rng.random() < r[k] for k in ("wh_drop", "wh_delay", "wh_dup"))
            delay = self.rng.uniform(2, 25)
            extra = [self.rng.uniform(0, 20) for _ in range(self.rng.choice([1, 1, 2]))]
            if drop:
                self.stats["dropped"] += 1
                try:
                    payload = json.loads(body).get("payload", {})
                    self.dropped.append((payload.get("referenceCompany", {}).get("id"), payload.get("syncId")))
                except (ValueError, AttributeError):
                    pass
                return
            self.stats["delayed"] += delay_it
            self.stats["duplicated"] += dup
            times = [delay if delay_it else 0.0] + (extra if dup else [])
        for wait in times:
            threading.Timer(wait, self.forward, (number, headers, body)).start()

    def forward(self, number, headers, body):
        with self.lock:
            self.delivered_order.append(number)
            self.stats["forwarded"] += 1
        for wait in (0, 1, 5):
            time.sleep(wait)
            status = unless_killed("webhook-receipt", self.send, headers, body)
            status = "killed" if status is None else status
            with self.lock:
                self.answers[status] += 1
            if isinstance(status, int) and 200 <= status < 300:
                return

    def send(self, headers, body):
        request = urllib.request.Request(self.target, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError as err:
            return f"error {type(err).__name__}"

    def reordered(self):
        """Deliveries forwarded after one that arrived later."""
        highest, count = 0, 0
        for number in self.delivered_order:
            if number < highest:
                count += 1
            highest = max(highest, number)
        return count


# ---- the load ----


def unique_png(rng):
    """taxi.png with a tEXt chunk of random text after IHDR: a valid PNG of its own bytes."""
    text = b"chaos\x00" + rng.getrandbits(64).to_bytes(8, "big").hex().encode()
    chunk = len(text).to_bytes(4, "big") + b"tEXt" + text + zlib.crc32(b"tEXt" + text).to_bytes(4, "big")
    ihdr_end = 8 + 8 + 13 + 4
    return PNG[:ihdr_end] + chunk + PNG[ihdr_end:]


def unique_pdf(rng):
    first = PDF.index(b"\n") + 1
    return PDF[:first] + b"%chaos " + rng.getrandbits(64).to_bytes(8, "big").hex().encode() + b"\n" + PDF[first:]


def money(rng, low=1, high=900):
    return f"{rng.randint(low, high)}.{rng.randint(0, 99):02d}"


class Raw(str):
    """A JSON number written verbatim."""


def dumps(value):
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text


@dataclass
class Item:
    id: str
    company: str
    kind: str  # expense, reimbursable, transfer, adjustment
    refusable: bool = False
    sha256: str | None = None


@dataclass
class Approval:
    company: str
    body: bytes
    items: list
    answers: list = field(default_factory=list)


def number(text):
    return json.loads(text)  # amounts have at most 2 decimals: a float is exact enough to print back


def make_item(rng, company, kind):
    item_id = new_id(rng)
    if kind == "expense":
        refusable = rng.random() < 0.03
        png = rng.random() < 0.6
        data = unique_png(rng) if png else unique_pdf(rng)
        net = "0.00" if refusable else money(rng)
        wire = {"id": item_id, "type": rng.choice(["Payment", "Payment", "Refund", "Reward", "Chargeback"]),
                "issueDate": "2026-11-30", "currency": rng.choice(["GBP", "EUR", "USD"]),
                "merchantName": rng.choice(["City Cabs", "Grand Hotel", "Dishoom"]),
                "lines": [{"netAmount": number(net), "taxAmount": 0 if refusable else number(money(rng, 0, 90)),
                           "accountRef": {"id": str(rng.randint(40, 49))}}],
                "receipt": {"fileName": "r.png" if png else "r.pdf", "contentType": "image/png" if png else
                            "application/pdf", "data": base64.b64encode(data).decode()}}
        return "expenses", wire, Item(item_id, company, kind, refusable, hashlib.sha256(data).hexdigest())
    if kind == "reimbursable":
        data = unique_pdf(rng)
        wire = {"id": item_id, "contactRef": {"id": str(rng.randint(700, 799))}, "issueDate": "2026-11-30",
                "dueDate": "2026-12-30", "currency": "GBP",
                "lines": [{"description": "Return ticket", "netAmount": number(money(rng)), "taxAmount": 0,
                           "accountRef": {"id": "42"}}],
                "receipt": {"fileName": "claim.pdf", "contentType": "application/pdf",
                            "data": base64.b64encode(data).decode()}}
        return "reimbursableExpenses", wire, Item(item_id, company, kind, False, hashlib.sha256(data).hexdigest())
    if kind == "transfer":
        amount = number(money(rng, 10, 5000))
        wire = {"id": item_id, "date": "2026-11-30", "description": "Card account top-up",
                "from": {"accountRef": {"id": "bank-main"}, "amount": amount},
                "to": {"accountRef": {"id": "card-account"}, "amount": amount}}
        return "transfers", wire, Item(item_id, company, kind)
    amount = number(money(rng, 1, 50))
    wire = {"id": item_id, "date": "2026-11-30", "currency": "GBP", "reference": "FX difference",
            "lines": [{"amount": amount, "accountRef": {"id": "fx-losses"}},
                      {"amount": -amount, "accountRef": {"id": "card-account"}}]}
    return "adjustments", wire, Item(item_id, company, kind)


def make_load(rng, expenses, companies, codat_api="expenses"):
    company_ids = [new_id(rng) for _ in range(companies)]
    # v1 takes card expenses only (its transfers and adjustments are expense types).
    weights = [55, 20, 12, 13] if codat_api == "expenses" else [1, 0, 0, 0]
    approvals, made = [], 0
    while made < expenses:
        company = rng.choice(company_ids)
        size = min(rng.randint(1, 6), expenses - made)
        batch, items = {}, []
        for _ in range(size):
            kind = rng.choices(["expense", "reimbursable", "transfer", "adjustment"], weights)[0]
            key, wire, item = make_item(rng, company, kind)
            batch.setdefault(key, []).append(wire)
            items.append(item)
        made += size
        approvals.append(Approval(company, dumps(batch).encode(), items))
    return company_ids, approvals


def post(approval, timeout=45):
    """One approval; an invocation killed meanwhile answers nothing (as Lambda's 502 would)."""
    answer = unless_killed("approval-intake", post_once, approval, timeout)
    if answer is None:
        approval.answers.append((None, "approval-intake was killed during the request", 0.0))
        return None
    return answer


def post_once(approval, timeout):
    status, text, seconds = devenv.post_approval(approval.company, approval.body, timeout)
    approval.answers.append((status, text, seconds))
    return status


def submit(approval, rng_seed):
    """Posts as a careful caller would: re-posts after a 500 or no answer (a repeat is safe)."""
    rng = random.Random(rng_seed)
    for attempt in range(6):
        status = post(approval)
        if status is not None and status != 500 and status < 504:
            return status
        time.sleep(1 + attempt + rng.random())
    return status


def drive(approvals, rng, workers):
    duplicate = set(i for i, _ in enumerate(approvals) if rng.random() < 0.05)
    replay = [a for a in approvals if rng.random() < 0.10]
    jobs = []
    for index, approval in enumerate(approvals):
        jobs.append((approval, rng.getrandbits(32)))
        if index in duplicate:  # the same approval again, at the same time
            jobs.append((approval, rng.getrandbits(32)))
    started = time.monotonic()
    done = Counter()
    with ThreadPoolExecutor(workers) as pool:
        for n, status in enumerate(pool.map(lambda job: submit(*job), jobs), 1):
            done[status] += 1
            if n % 50 == 0:
                log(f"{n}/{len(jobs)} approvals answered ({time.monotonic() - started:.0f}s): {dict(done)}")
        for status in pool.map(lambda a: post(a), replay):
            done[f"replay {status}"] += 1
    log(f"posted {len(jobs)} approvals ({len(duplicate)} concurrent duplicates) and {len(replay)} exact replays "
        f"in {time.monotonic() - started:.0f}s: {dict(done)}")
    return len(duplicate), len(replay)


# ---- settling and the state ----


def aws(service):
    return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                 region_name=devenv.REGION).client(service, endpoint_url=devenv.MOTO_URL)


def scan_expenses(dynamodb):
    found = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=devenv.TABLE):
        for item in page["Items"]:
            sk = item.get("sk", {}).get("S", "")
            if sk.startswith("EXPENSE#"):
                found[sk.removeprefix("EXPENSE#").lower()] = item.get("status", {}).get("S")
    return found


def settle(items, started, seconds):
    dynamodb = aws("dynamodb")
    first_terminal, statuses = {}, {}
    deadline = time.time() + seconds
    last_log = 0
    while True:
        statuses = scan_expenses(dynamodb)
        now = time.time()
        for item in items:
            if statuses.get(item.id) in TERMINAL and item.id not in first_terminal:
                first_terminal[item.id] = now
        left = [i for i in items if statuses.get(i.id) not in TERMINAL]
        if not left or now > deadline:
            break
        if now - last_log > 30:
            last_log = now
            log(f"{len(items) - len(left)}/{len(items)} terminal after {now - started:.0f}s; waiting: "
                + ", ".join(f"{k} {v}" for k, v in Counter(statuses.get(i.id, "absent") for i in left).items()))
        time.sleep(3)
    return statuses, first_terminal


def view(company, expense_id):
    try:
        with urllib.request.urlopen(f"{devenv.FUNCTION_URL}/expense-status/companies/{company}/expenses/{expense_id}",
                                    timeout=60) as response:
            return json.loads(response.read())
    except (OSError, ValueError) as err:
        return {"error": str(err)}


def sandbox_calls():
    with urllib.request.urlopen(f"{devenv.SANDBOX_URL}/_sandbox/calls", timeout=300) as response:
        return json.loads(response.read())


# ---- invariants ----

INVARIANTS = ["terminal", "posted-once", "attached-once", "receipt-bytes", "unconfirmed-real", "failed-real",
              "outcome-kind", "valid-accepted"]


def ok(status):
    return status is not None and 200 <= status < 300


def history(calls_by_id, expense_id):
    """seq:status(Codat's own status) of every create or upload call that carried the id."""
    return ", ".join(f"#{c['seq']} {call_class(c['method'], c['path'])} {c['status']}"
                     f"(Codat {c.get('handledStatus') or 'not reached'})" for c in calls_by_id.get(expense_id, []))


def check(items, approvals, statuses, calls, proxy, codat_api="expenses"):
    violations = defaultdict(list)
    info = Counter()
    by_id = {i.id: i for i in items}
    accepted_creates, refused_creates, accepted_attachments, refused_attachments = (defaultdict(list) for _ in range(4))
    lost_by_id = defaultdict(list)
    undecided_by_id = defaultdict(list)
    undecided_creates = defaultdict(list)
    calls_by_id = defaultdict(list)
    for call in calls:
        cls = call_class(call["method"], call["path"])
        handled, status = call.get("handledStatus"), call["status"]
        ids = ids_in(call["method"], call["path"], call.get("rawBody") or call.get("body"))
        for expense_id in ids:
            calls_by_id[expense_id].append(call)
            if handled is None:  # an injected fault answered before Codat saw it
                pass
            elif cls.startswith("create-"):
                (accepted_creates if ok(handled) else refused_creates)[expense_id].append(call)
            elif cls == "attachment":
                (accepted_attachments if ok(handled) else refused_attachments)[expense_id].append(call)
            if ok(handled) and status != handled:
                lost_by_id[expense_id].append(f"seq {call['seq']} {cls}: Codat {handled}, answered {status}")
            elif cls == "create-expense" and status >= 500:
                undecided_creates[expense_id].append(f"seq {call['seq']} {cls}: answered {status}")
            elif cls == "attachment" and status >= 500:
                # A 5xx to an upload is no answer about its effect, and Codat has no attachment
                # list to ask: the product cannot tell it from a lost answer.
                undecided_by_id[expense_id].append(f"seq {call['seq']} {cls}: answered {status}")
    for record in proxy.lost:  # kills are only the proxy's to know: the sandbox answered normally
        for expense_id in record["ids"]:
            lost_by_id[expense_id].append(f"{record['cls']}: {record['how']}")

    for item in items:
        status = statuses.get(item.id)
        if status not in TERMINAL:
            violations["terminal"].append(f"{item.kind} {item.id} (company {item.company}) is {status or 'absent'}")
        creates = accepted_creates.get(item.id, [])
        if len(creates) > 1:
            violations["posted-once"].append(f"{item.kind} {item.id} (company {item.company}) accepted by Codat "
                                             f"{len(creates)} times; Codat calls carrying it: {history(calls_by_id, item.id)}")
        if refused_creates.get(item.id):
            info["create re-sent and refused by Codat (id already used)"] += sum(
                1 for c in refused_creates[item.id] if creates and c["seq"] > creates[0]["seq"])
        attached = accepted_attachments.get(item.id, [])
        if len(attached) > 1:
            violations["attached-once"].append(f"{item.kind} {item.id} (company {item.company}) attached "
                                               f"{len(attached)} times; Codat calls carrying it: {history(calls_by_id, item.id)}")
        if status == "uploaded":
            if len(attached) != 1:
                violations["receipt-bytes"].append(f"{item.id} uploaded with {len(attached)} accepted attachments")
            elif (attached[0].get("attachment") or {}).get("sha256") != item.sha256:
                violations["receipt-bytes"].append(f"{item.id}: Codat holds sha256 "
                                                   f"{(attached[0].get('attachment') or {}).get('sha256')}, approved "
                                                   f"{item.sha256}")
        if item.kind in ("transfer", "adjustment") and status == "uploaded" or \
                item.kind in ("expense", "reimbursable") and status == "recordedWithoutAttachment":
            violations["outcome-kind"].append(f"{item.kind} {item.id} is {status}")
        if status in ("unconfirmed", "failed", "uploadFailed"):
            v = view(item.company, item.id)
            failure = v.get("failure") or {}
            stage, reason = failure.get("stage"), failure.get("reason") or ""
            where = f"{item.kind} {item.id} (company {item.company}) {status} at {stage}: {reason[:220]}"
            lost = lost_by_id.get(item.id, [])
            if status == "unconfirmed":
                upload_lost = [x for x in lost if "attachment" in x]
                create_lost = [x for x in lost if "create" in x]
                if stage == "upload" and upload_lost:
                    info["unconfirmed upload after a real lost answer (justified)"] += 1
                elif stage == "upload" and undecided_by_id.get(item.id):
                    info["unconfirmed upload after a 5xx Codat did not act on (undecidable: no attachment list)"] += 1
                elif stage == "submission" and create_lost and "could not be read" in reason:
                    info["unconfirmed create, lost answer and Codat's lists unreadable (justified)"] += 1
                elif stage == "submission" and codat_api == "v1" and (create_lost or undecided_creates.get(item.id)):
                    # v1 cannot look a dataset up by transaction id: a lost or 5xx answer is undecidable.
                    info["unconfirmed v1 create after a lost or 5xx answer (undecidable on v1)"] += 1
                else:
                    violations["unconfirmed-real"].append(
                        where + f" | lost answers for it: {lost or 'none'}")
            elif status == "failed":
                refused = [c for c in refused_creates.get(item.id, []) if 400 <= c["handledStatus"] < 500
                           and not accepted_creates.get(item.id)]
                if item.refusable and stage == "sync" or refused:
                    info["failed: Codat refused it (justified)"] += 1
                else:
                    violations["failed-real"].append(where + f" | lost answers for it: {lost or 'none'}")
            else:
                if refused_attachments.get(item.id) and not accepted_attachments.get(item.id):
                    info["uploadFailed: Codat refused the upload (justified)"] += 1
                else:
                    violations["failed-real"].append(where)
        # A zero-total expense Codat never saw (its create's answer lost, so `unconfirmed`, judged
        # above) could not be refused.
        if item.refusable and status not in ("failed", "unconfirmed", None):
            violations["failed-real"].append(f"zero-total {item.id} ended {status}, not failed")
    for approval in approvals:
        for status, text, _ in approval.answers:
            if status in (400, 409):
                violations["valid-accepted"].append(f"approval for {approval.company} "
                                                    f"({', '.join(i.id for i in approval.items)}): {status} {text}")
    return violations, info


# ---- report ----


def rates_table(calls, proxy):
    """Measured per call class from the sandbox's log (and the proxy's drops and kills)."""
    table = defaultdict(Counter)
    for call in calls:
        cls = call_class(call["method"], call["path"])
        if call["path"].startswith("/_sandbox"):
            continue
        row = table[cls]
        row["calls"] += 1
        status, handled = call["status"], call.get("handledStatus")
        if handled is None and status == 429:
            row["429"] += 1
        elif handled is None and status == 503:
            row["503"] += 1
        elif handled is None and status >= 500:
            row["5xx"] += 1
        elif ok(handled) and status != handled:
            row["lost"] += 1
    for record in proxy.lost:
        if record["how"].startswith("dropped"):
            table[record["cls"]]["lost (of which dropped conn.)"] += 1
    for kill in proxy.kills:
        table[kill["cls"]]["kill"] += 1
    print(f"\n{'Codat call':22} {'calls':>6} {'429':>12} {'503':>12} {'other 5xx':>12} {'lost':>12} "
          f"{'(dropped)':>9} {'killed':>10}")
    total = Counter()
    for cls in sorted(table):
        row = table[cls]
        total.update(row)
        print(_rate_row(cls, row))
    print(_rate_row("all", total))


def _rate_row(name, row):
    n = row["calls"] or 1

    def cell(key):
        return f"{row[key]:4} {100 * row[key] / n:5.1f}%"
    return (f"{name:22} {row['calls']:6} {cell('429'):>12} {cell('503'):>12} {cell('5xx'):>12} {cell('lost'):>12} "
            f"{row['lost (of which dropped conn.)']:9} {cell('kill'):>10}")


def restarted(binary, killed_pids):
    """A live process of the binary other than the killed ones (cargo lambda started it again)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) not in killed_pids and function_binary(int(pid)) == binary:
            return True
    return False


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expenses", type=int, default=300, help="items approved, all kinds (default 300)")
    parser.add_argument("--companies", type=int, default=20, help="companies (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    parser.add_argument("--settle", type=float, default=1260.0,
                        help="seconds every expense may take to become terminal after the load (default 1260: "
                             "a killed upload is unconfirmed only after the claim timeout (SWEEP_CLAIM_TIMEOUT_SECONDS, 6 minutes))")
    parser.add_argument("--workers", type=int, default=4, help="concurrent approvals (default 4)")
    parser.add_argument("--codat-api", choices=["expenses", "v1"], default="expenses",
                        help="the API new approvals use (v1: card expenses only)")
    parser.add_argument("--ci", action="store_true", help=f"the CI profile: {CI}, no upload kills")
    parser.add_argument("--no-upload-kills", action="store_true",
                        help="kill no upload (a killed upload stays `uploading` until the claim timeout (SWEEP_CLAIM_TIMEOUT_SECONDS, 6 minutes))")
    parser.add_argument("--state-dir", default=None, help="where logs go (default .local/)")
    args = parser.parse_args()
    if args.ci:
        for key, value in CI.items():
            setattr(args, key, value)
    return args


def main():
    args = parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 32)
    rates = PROFILES[args.profile]
    log(f"seed {seed}: rerun with --seed {seed} --expenses {args.expenses} --companies {args.companies} "
        f"--profile {args.profile}{' --ci' if args.ci else ''}; rates {rates}")
    if args.state_dir:
        devenv.STATE = Path(args.state_dir).resolve()
    atexit.register(devenv.stop_all)
    atexit.register(stop_respawned)
    # A killed invocation is never answered by cargo lambda: the pump and the schedule would
    # wait 300 s for it. They get Lambda's answer instead, at once (see unless_killed), and the
    # pump retries the batch as the event source mapping would.
    pump.invoke = kill_aware_invoke(pump.invoke)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    proxy_port, webhook_port = devenv.SANDBOX_PORT + 1, devenv.SANDBOX_PORT + 2
    devenv.ensure_free(proxy_port, webhook_port)
    kill_classes = KILLABLE - {"attachment"} if args.ci or args.no_upload_kills else KILLABLE
    codat = CodatProxy(proxy_port, devenv.SANDBOX_PORT, rates, random.Random(seed ^ 0xC0DA7), kill_classes)
    hooks = WebhookProxy(webhook_port, f"{devenv.FUNCTION_URL}/webhook-receipt/webhooks/codat", rates,
                         random.Random(seed ^ 0x4E0B))
    codat.start()
    hooks.start()
    _, the_pump = devenv.up(sweep_seconds=10, sweep_poll_after=20, sync_delay_ms=500, codat_api=args.codat_api,
                            codat_base_url=f"http://127.0.0.1:{proxy_port}",
                            webhook_url=f"http://127.0.0.1:{webhook_port}/webhooks/codat")
    try:
        for function in ("approval-intake", "expense-status", "webhook-receipt"):  # cargo lambda starts them
            try:
                urllib.request.urlopen(f"{devenv.FUNCTION_URL}/{function}/warm-up", timeout=600).read()
            except OSError:
                pass
        rng = random.Random(seed)
        _, approvals = make_load(rng, args.expenses, args.companies, args.codat_api)
        items = [i for a in approvals for i in a.items]
        log(f"{len(items)} items in {len(approvals)} approvals for {args.companies} companies: "
            + ", ".join(f"{k} {v}" for k, v in Counter(i.kind for i in items).items())
            + f"; {sum(i.refusable for i in items)} zero-total (Codat refuses them)")
        started = time.time()
        duplicates, replays = drive(approvals, rng, args.workers)
        driven = time.time()
        statuses, first_terminal = settle(items, started, args.settle)
        settled = time.time()
        calls = sandbox_calls()
        violations, info = check(items, approvals, statuses, calls, codat, args.codat_api)
        for invariant in INVARIANTS:
            found = violations.get(invariant, [])
            if found:
                print(f"\n== {invariant}: {len(found)} violation(s)")
                for line in found:
                    print(f"  {line}")
        print()
        print("final statuses: " + ", ".join(f"{k}: {v}" for k, v in
                                             sorted(Counter(statuses.get(i.id, 'absent') for i in items).items())))
        per_kind = defaultdict(Counter)
        for i in items:
            per_kind[i.kind][statuses.get(i.id, "absent")] += 1
        for kind, counts in per_kind.items():
            print(f"  {kind:13} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        answers = Counter(a[0] for ap in approvals for a in ap.answers)
        print(f"approval answers: {dict(answers)} ({duplicates} concurrent duplicates, {replays} exact replays)")
        rates_table(calls, codat)
        print(f"proxy decisions by call class: " + "; ".join(
            f"{cls} {dict(c)}" for cls, c in sorted(codat.decisions.items())))
        killed = defaultdict(list)
        for kill in codat.kills:
            killed[kill["binary"]].append(kill["pid"])
        killed_pids = {k["pid"] for k in codat.kills}
        print(f"function processes killed between a Codat call and its recording: {len(codat.kills)} ("
              + ", ".join(f"{b} x{len(p)}, running again: {restarted(b, killed_pids)}" for b, p in killed.items())
              + f"); kill targets not found: {len(codat.kill_misses)}; respawned by this script: {len(RESPAWNED)}")
        for kill in codat.kills:
            print(f"  killed {kill['binary']} (pid {kill['pid']}) after {kill['cls']} {kill['path']}"
                  + (f" carrying {', '.join(kill['ids'])}" if kill["ids"] else ""))
        s = hooks.stats
        received = s["received"] or 1
        kept = (s["received"] - s["dropped"]) or 1
        print(f"webhooks from the sandbox: {s['received']}; dropped {s['dropped']} ({100 * s['dropped'] / received:.0f}%);"
              f" of the rest delayed {s['delayed']} ({100 * s['delayed'] / kept:.0f}%), duplicated {s['duplicated']} "
              f"({100 * s['duplicated'] / kept:.0f}%); deliveries forwarded {s['forwarded']}, "
              f"out of arrival order {hooks.reordered()}; "
              f"webhook function answered {dict(hooks.answers)}")
        if info:
            print("information: " + "; ".join(f"{k}: {v}" for k, v in info.items()))
        last = max(first_terminal.values()) if first_terminal else None
        print(f"load posted in {driven - started:.0f}s; "
              + (f"last expense terminal {last - started:.0f}s after the first approval "
                 f"({last - driven:.0f}s after the last)" if last else "no expense terminal")
              + f"; settle ended {settled - started:.0f}s in; "
              f"{sum(1 for i in items if statuses.get(i.id) in TERMINAL)}/{len(items)} terminal")
        print("violations per invariant: " + ", ".join(f"{n}: {len(violations.get(n, []))}" for n in INVARIANTS))
        print(f"seed {seed}, expenses {args.expenses}, companies {args.companies}, profile {args.profile}"
              f"{', ci' if args.ci else ''}; logs in {devenv.STATE}")
        return 1 if any(violations.values()) else 0
    finally:
        the_pump.close()
        devenv.stop_all()


if __name__ == "__main__":
    sys.exit(main())
