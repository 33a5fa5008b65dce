"""Volume through the whole local flow: N expenses across M companies, approved concurrently in
approvals of up to 100 expenses, each with a receipt of its own bytes, until every one is
`uploaded`. Prints a progress bar, then the figures:

- time to all uploaded and expenses per second;
- approval latency p50 / p99;
- Codat calls (the sandbox's call log), DynamoDB requests and Lambda invocations (the
  functions' own per-invocation usage lines) per expense, by function;
- peak RSS of each function's processes (VmHWM, sampled from /proc).

    python local/load.py [--expenses N] [--companies M] [--workers W] [--concurrency C]
    python local/load.py --ci      # 500 expenses, 10 companies: a regression check of the counts

The stack is `devenv.up` with release builds (as deployed) and `cargo lambda watch
--concurrency C`. It fails (exit 1) when an expense is not `uploaded` within --timeout, an
approval is refused, or a per-expense count is above its bound (--max-dynamodb, --max-invocations,
--max-codat-extra): benchmarks, so no bound is on time.
"""

import argparse
import base64
import json
import os
import random
import sys
import threading
import time
import uuid
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import devenv  # noqa: E402
import template as tpl  # noqa: E402

PNG = (devenv.ROOT / "examples/receipts/taxi.png").read_bytes()
REPOSTS = 3
CI = {"expenses": 500, "companies": 10, "workers": 4, "debug": True}


def log(message):
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", flush=True)


def unique_png(rng):
    """taxi.png with a tEXt chunk of random text after IHDR: a valid PNG of its own bytes."""
    text = b"load\x00" + rng.getrandbits(64).to_bytes(8, "big").hex().encode()
    chunk = len(text).to_bytes(4, "big") + b"tEXt" + text + zlib.crc32(b"tEXt" + text).to_bytes(4, "big")
    ihdr_end = 8 + 8 + 13 + 4
    return PNG[:ihdr_end] + chunk + PNG[ihdr_end:]


def money(rng, low=1, high=900):
    return f"{rng.randint(low, high)}.{rng.randint(0, 99):02d}"


def receipt(rng, name):
    data = unique_png(rng)
    return {"fileName": name, "contentType": "image/png", "data": base64.b64encode(data).decode()}


def card_expense(rng):
    return {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": "Payment", "issueDate": "2026-11-30", "currency": "GBP", "merchantName": "City Cabs",
            "lines": [{"netAmount": json.loads(money(rng)), "taxAmount": json.loads(money(rng, 0, 90)),
                       "accountRef": {"id": str(rng.randint(40, 49))}}],
            "receipt": receipt(rng, "taxi.png")}


def reimbursable_expense(rng):
    return {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "contactRef": {"id": str(rng.randint(700, 799))}, "issueDate": "2026-11-30", "dueDate": "2026-12-30",
            "currency": "GBP",
            "lines": [{"description": "Return ticket", "netAmount": json.loads(money(rng)), "taxAmount": 0,
                       "accountRef": {"id": "42"}}],
            "receipt": receipt(rng, "ticket.png")}


def make_load(rng, expenses, companies, codat_api, largest):
    """Approvals of up to `largest` expenses (a fifth reimbursable on the current API), spread
    over the companies in turn."""
    company_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(companies)]
    approvals, made = [], 0
    while made < expenses:
        size = min(rng.randint(max(1, largest // 2), largest), expenses - made)
        batch = defaultdict(list)
        for _ in range(size):
            if codat_api == "expenses" and rng.random() < 0.2:
                batch["reimbursableExpenses"].append(reimbursable_expense(rng))
            else:
                batch["expenses"].append(card_expense(rng))
        company = company_ids[len(approvals) % companies]
        approvals.append((company, json.dumps(batch).encode(), [e["id"] for kind in batch.values() for e in kind]))
        made += size
    return company_ids, approvals


class Progress:
    """Counts each company's expenses by status (one query per unfinished company, projecting
    only the status) and draws a bar."""

    def __init__(self, total, companies):
        import boto3

        self.dynamodb = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                              region_name=devenv.REGION).client("dynamodb",
                                                                                endpoint_url=devenv.MOTO_URL)
        self.total = total
        self.by_company = {c: Counter() for c in companies}
        self.finished = set()

    def company(self, company):
        counts = Counter()
        pages = self.dynamodb.get_paginator("query").paginate(
            TableName=devenv.TABLE, KeyConditionExpression="pk = :pk AND begins_with(sk, :e)",
            ExpressionAttributeValues={":pk": {"S": f"COMPANY#{company}"}, ":e": {"S": "EXPENSE#"}},
            ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"})
        for page in pages:
            counts.update(item["status"]["S"] for item in page["Items"])
        return counts

    def poll(self, expected):
        for company, counts in self.by_company.items():
            if company in self.finished:
                continue
            self.by_company[company] = fresh = self.company(company)
            if fresh["uploaded"] == expected.get(company, 0):
                self.finished.add(company)
        return self.counts()

    def counts(self):
        total = Counter()
        for counts in self.by_company.values():
            total.update(counts)
        return total

    def draw(self, counts, started, approved):
        done = counts["uploaded"]
        width = 40
        filled = width * done // max(self.total, 1)
        rest = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "uploaded")
        line = (f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} uploaded, {approved} approved, "
                f"{time.monotonic() - started:5.0f}s {rest}")
        sys.stdout.write(line[:200].ljust(200) if sys.stdout.isatty() else line.lstrip("\r") + "\n")
        sys.stdout.flush()


class MemorySampler(threading.Thread):
    """Peak VmHWM of every process running one of the function binaries."""

    def __init__(self, binaries):
        super().__init__(daemon=True)
        self.binaries = set(binaries)
        self.peak_kib = Counter()
        self.processes = defaultdict(set)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    name = Path(os.readlink(f"/proc/{pid}/exe")).name
                    if name not in self.binaries:
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kib[name] = max(self.peak_kib[name], int(line.split()[1]))
                    self.processes[name].add(pid)
                except OSError:
                    continue


def usage_since(offset):
    """(invocations, DynamoDB requests, Codat calls) per function from the usage log lines."""
    per_function = defaultdict(lambda: [0, 0, 0])
    with open(devenv.STATE / "functions.log", errors="replace") as lines:
        lines.seek(offset)
        for line in lines:
            if '"invocation usage"' not in line:
                continue
            try:
                fields = json.loads(line[line.index("{"):])["fields"]
            except (ValueError, KeyError):
                continue
            usage = per_function[fields["function"]]
            usage[0] += 1
            usage[1] += fields["dynamodb_requests"]
            usage[2] += fields["codat_calls"]
    return per_function


def sandbox_calls(companies):
    with urllib_open(f"{devenv.SANDBOX_URL}/_sandbox/calls") as response:
        calls = json.loads(response.read())
    prefixes = tuple(f"/companies/{c}/" for c in companies)
    return [c for c in calls if c["path"].startswith(prefixes)]


def urllib_open(url):
    import urllib.request

    return urllib.request.urlopen(url, timeout=300)


def endpoint(call):
    path = call["path"].split("/", 3)[3]  # after /companies/{id}/
    path = path.removeprefix("sync/expenses/")
    parts = path.split("/")
    if path.endswith("/attachments"):
        return f"{call['method']} ... /attachments"
    if parts[0] == "syncs" and len(parts) > 2:
        return f"{call['method']} syncs/{{id}}/{'/'.join(parts[2:3])}"
    return f"{call['method']} {parts[0]}" + ("/{id}" if len(parts) > 1 else "")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expenses", type=int, default=10000)
    parser.add_argument("--companies", type=int, default=50)
    parser.add_argument("--largest", type=int, default=100, help="most expenses in one approval (at most 100)")
    parser.add_argument("--workers", type=int, default=8, help="approvals in flight at once")
    parser.add_argument("--concurrency", type=int, default=8, help="instances per function (cargo lambda watch)")
    parser.add_argument("--codat-api", choices=["expenses", "v1"], default="expenses")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds until every expense must be uploaded")
    parser.add_argument("--max-dynamodb", type=float, default=5.0, help="DynamoDB requests per expense, at most")
    parser.add_argument("--max-invocations", type=float, default=0.2, help="Lambda invocations per expense, at most")
    parser.add_argument("--max-codat-extra", type=float, default=0.01,
                        help="Codat calls per expense beyond the floor and the connections reads, at most")
    parser.add_argument("--debug", action="store_true",
                        help="debug builds (the counts are the same; CI has them built already)")
    parser.add_argument("--ci", action="store_true", help=f"the CI profile: {CI}, debug builds")
    args = parser.parse_args()
    if args.ci:
        for key, value in CI.items():
            setattr(args, key, value)
    args.largest = max(1, min(args.largest, 100))
    return args


def main():
    args = parse_args()
    import atexit

    atexit.register(devenv.stop_all)
    rng = random.Random(args.seed)
    companies, approvals = make_load(rng, args.expenses, args.companies, args.codat_api, args.largest)
    expected = Counter()
    for company, _, ids in approvals:
        expected[company] += len(ids)
    args.creates = sum(-(-len(items) // 50) for _, body, _ in approvals for items in json.loads(body).values())
    total = sum(expected.values())
    log(f"{total} expenses in {len(approvals)} approvals for {len(companies)} companies "
        f"(CODAT_API={args.codat_api}, {args.workers} approvals at once, {args.concurrency} instances per function)")
    _, the_pump = devenv.up(sweep_seconds=30, sweep_poll_after=60, sync_delay_ms=300, codat_api=args.codat_api,
                            release=not args.debug, concurrency=args.concurrency)
    binaries = sorted(fn.binary for fn in tpl.functions(tpl.load(devenv.ROOT / "template.yaml")))
    sampler = MemorySampler(binaries)
    sampler.start()
    try:
        # cargo lambda starts an instance on first use: not part of the figures.
        devenv.post_approval(companies[0], b"{}", timeout=600)
        offset = (devenv.STATE / "functions.log").stat().st_size
        progress = Progress(total, companies)
        answers, latencies = Counter(), []
        approved = [0]
        started = time.monotonic()

        reposts = Counter()

        def submit(approval):
            """Posts the approval; re-posts it (safe, as the API says) while it answers 5xx or not
            at all, as a client would. Each post's latency counts; the last answer is the verdict."""
            company, body, ids = approval
            for attempt in range(REPOSTS + 1):
                status, text, seconds = devenv.post_approval(company, body, timeout=600)
                latencies.append(seconds)
                if status is not None and status < 500:
                    break
                reposts[status] += 1
                log(f"approval for {company} answered {status}: {text[:160]}" +
                    ("; posting it again" if attempt < REPOSTS else ""))
                time.sleep(2)
            answers[status] += 1
            if status == 202:
                approved[0] += len(ids)
            elif status is not None and status < 500:
                log(f"approval for {company} answered {status}: {text}")
            return status

        pool = ThreadPoolExecutor(args.workers)
        futures = [pool.submit(submit, a) for a in approvals]
        deadline = started + args.timeout
        counts = Counter()
        while time.monotonic() < deadline:
            counts = progress.poll(expected)
            progress.draw(counts, started, approved[0])
            if counts["uploaded"] == total:
                break
            if all(f.done() for f in futures) and answers.get(202, 0) < len(approvals):
                break  # an approval was refused: its expenses will never be uploaded
            time.sleep(2)
        finished = time.monotonic()
        print()
        pool.shutdown(wait=True)
        time.sleep(2)  # the last usage lines reach the log
        per_function = usage_since(offset)
        calls = sandbox_calls(companies)
        sampler.stop.set()
        return report(args, total, counts, answers, reposts, latencies, finished - started, per_function, calls,
                      sampler)
    finally:
        the_pump.close()
        devenv.stop_all()


def report(args, total, counts, answers, reposts, latencies, elapsed, per_function, calls, sampler):
    uploaded = counts["uploaded"]
    flow = {name: u for name, u in per_function.items() if name != "expense-status"}
    invocations = sum(u[0] for u in flow.values())
    dynamodb = sum(u[1] for u in flow.values())
    codat = len(calls)
    by_endpoint = Counter(endpoint(c) for c in calls)
    attachments = sum(1 for c in calls if c["path"].endswith("/attachments") and 200 <= c["status"] < 300)
    connections = by_endpoint["GET connections"]
    # The floor on the current API: one attachment each, one create per 50 expenses of a kind
    # in an approval, one listing page per sync (each create queues one). Connections are read
    # once per company per warm instance. Anything more is a retry or a poll.
    floor = total + 2 * args.creates if args.codat_api == "expenses" else None
    beyond = codat - connections - floor if floor is not None else None
    print(f"\n## {total} expenses, {args.companies} companies, CODAT_API={args.codat_api} "
          f"({args.workers} approvals at once, {args.concurrency} instances per function, "
          f"{'debug' if args.debug else 'release'} builds)\n")
    print(f"{'uploaded':40} {uploaded}/{total}" + ("" if uploaded == total else "   NOT ALL: " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items()) if k != "uploaded")))
    print(f"{'time to all uploaded':40} {elapsed:.0f} s" + ("" if uploaded == total else " (timed out)"))
    print(f"{'expenses per second':40} {uploaded / elapsed:.1f}")
    print(f"{'approval latency p50 / p99 / max':40} {percentile(latencies, 50):.2f} / {percentile(latencies, 99):.2f}"
          f" / {max(latencies):.2f} s   answers {dict(answers)}, re-posted after {dict(reposts) or 'none'}")
    print(f"{'Codat calls per expense':40} {codat / total:.3f}  ({codat}: {attachments} attachments, "
          f"{connections} connections reads" + (f"; floor {floor / total:.3f}, {beyond} calls beyond it and the "
                                                 "connections reads)" if floor is not None else ")"))
    print(f"{'DynamoDB requests per expense':40} {dynamodb / total:.3f}  ({dynamodb})")
    print(f"{'Lambda invocations per expense':40} {invocations / total:.3f}  ({invocations})")
    print(f"\n{'function':20} {'invocations':>12} {'DynamoDB':>10} {'per expense':>12} {'Codat':>8} "
          f"{'processes':>10} {'peak RSS (MiB)':>15}")
    for name in sorted(set(flow) | set(sampler.peak_kib)):
        n, requests, codat_calls = flow.get(name, (0, 0, 0))
        print(f"{name:20} {n:>12} {requests:>10} {requests / total:>12.3f} {codat_calls:>8} "
              f"{len(sampler.processes.get(name, ())):>10} {sampler.peak_kib.get(name, 0) / 1024:>15.1f}")
    print("\nCodat calls by endpoint (sandbox log):")
    for kind, n in sorted(by_endpoint.items()):
        print(f"  {kind:50} {n:>7}")
    problems = []
    if uploaded != total:
        problems.append(f"{total - uploaded} expenses not uploaded")
    if answers.get(202, 0) != sum(answers.values()):
        problems.append(f"approvals not accepted: {dict(answers)}")
    if dynamodb / total > args.max_dynamodb:
        problems.append(f"{dynamodb / total:.2f} DynamoDB requests per expense (at most {args.max_dynamodb})")
    if invocations / total > args.max_invocations:
        problems.append(f"{invocations / total:.3f} Lambda invocations per expense (at most {args.max_invocations})")
    if beyond is not None and beyond / total > args.max_codat_extra:
        problems.append(f"{beyond} Codat calls beyond the floor and the connections reads "
                        f"({beyond / total:.3f} per expense, at most {args.max_codat_extra})")
    if connections > args.companies * args.concurrency:
        problems.append(f"{connections} connections reads: more than one per company per instance")
    if attachments != uploaded:
        problems.append(f"{attachments} attachments accepted for {uploaded} uploaded expenses")
    print()
    for problem in problems:
        print(f"FAILED: {problem}")
    print("load run " + ("failed" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
