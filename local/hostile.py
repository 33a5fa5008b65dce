"""Hostile and malformed input at volume against the local stack's three HTTP routes.

    python local/hostile.py [--requests N] [--seed S] [--workers W] [--codat-api expenses|v1]
    python local/hostile.py --functions-url http://127.0.0.1:9000/lambda-url ...   # a running stack

Without `--functions-url` it starts the whole local stack with `devenv.up` (ports from
MOTO_PORT / SANDBOX_PORT / WATCH_PORT, as devenv reads them) and stops it at the end.

It sends, from W concurrent workers, N requests drawn at random (the seed is printed; the same
seed, N and API give the same cases) from these categories:

  valid, replay     fully valid approvals (expenses, and on the current API reimbursable
                    expenses, transfers and adjustments), and exact re-posts of them
  corrupt-field     one bad field (array for an object, unknown field, wrong type, missing
                    field) in an otherwise valid batch of 2-5 expenses
  framing           trailing data, a second document, malformed JSON, empty body, top-level array
  bad-id            non-canonical expense ids in the body
  bad-path          non-canonical company ids, dot segments, double slashes, extra segments
  money             non-ISO 4217 currencies, too many decimals, huge magnitudes, strings, rates
  dates             years outside 0001-9999, impossible or malformed dates
  strings           text far over limits, control and bidi characters, 100 maximal lines
  receipts          bytes not matching the content type, empty or bad base64, hostile file names
  oversize          bodies over Lambda's 6 MB request limit
  webhook           forged, stale, future, replayed, array-shaped or non-canonical deliveries
  status            the status route with the same id/path attacks, and cross-company reads
  transfers         (current API) one bad transfer or adjustment among valid siblings of every
                    kind: a receipt on it, from = to, zero, negative, too precise or too large
                    amounts, unbalanced lines (off by one minor unit, or balanced only as floats),
                    wrong types, arrays for objects, unknown or missing fields, bad ids and
                    dates, ids repeated across kinds; the v1 types in expenses[]; conflicting
                    replays (a valid batch, then the same ids with one field changed, or a
                    transfer's id reused by another kind); valid ones at their edges (lines that
                    balance as decimals but not as floats, 4-decimal and exponent amounts, JPY,
                    CLF, 100 lines). (v1) transfers/adjustments keys, and valid v1 transfer and
                    adjustment types in expenses[]

What a clean run proves (each is an invariant; every violation is printed with its case):

  no-5xx            no request is answered 5xx (valid approvals the stack deferred with a
                    502/503 and a note are listed separately, not counted)
  answered          every request is answered within --timeout (no hang, no dropped connection)
  hostile-refused   every hostile case is answered 4xx (a 2xx is "accepted bad input")
  valid-accepted    every valid approval, read and delivery is answered 2xx (or deferred)
  replay-ignored    a replayed webhook delivery is never processed as a new one
  refusal-named     where a case pins its refusal down, the answer says it: a conflicting
                    replay is a 409 naming the field that changed, a v1 type in expenses[] a 400
                    naming transfers/adjustments, those keys under v1 a 400 naming the key
  nothing-left      a refused approval left nothing behind: none of its ids (transfers and
                    adjustments too) is readable through the status route, stored in DynamoDB,
                    in any create call in the sandbox's call log (expense and adjustment POSTs,
                    transfer PUTs), or has a receipt object in S3
  once-in-Codat     no transfer or adjustment reached Codat twice, whatever was re-posted or
                    conflicted: per /_sandbox/stats no transfer was re-PUT (resent or updated),
                    and no transfer or adjustment id is in two create calls of the call log
  valid-final       every accepted valid item reaches its terminal status within --settle
                    seconds: `uploaded` for expenses (which carry receipts),
                    `recordedWithoutAttachment` for transfers and adjustments

It exits non-zero on any violation.
"""

import argparse
import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).parent))
import devenv  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECEIPTS = {
    "png": ("image/png", (ROOT / "examples/receipts/taxi.png").read_bytes()),
    "png2": ("image/png", (ROOT / "examples/receipts/team-lunch.png").read_bytes()),
    "pdf": ("application/pdf", (ROOT / "examples/receipts/hotel.pdf").read_bytes()),
}
FINAL = {"uploaded", "recordedWithoutAttachment", "failed", "uploadFailed", "unconfirmed"}
SVIX_TOLERANCE = 300  # seconds, the svix verifier's

# ---- HTTP ----


@dataclass
class Request:
    method: str
    function: str  # approval-intake, expense-status, webhook-receipt
    path: str  # sent exactly as written (no normalisation)
    body: bytes = b""
    headers: dict = field(default_factory=dict)


@dataclass
class Answer:
    status: int | None  # None: no answer (timeout or connection failure)
    body: bytes
    seconds: float
    error: str | None = None

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def brief(self, limit=160):
        if self.status is None:
            return f"no answer after {self.seconds:.1f}s ({self.error})"
        text = self.body.decode("utf-8", "replace")
        return f"{self.status} {text[:limit]}{'...' if len(text) > limit else ''}"


def send(base_url, request, timeout):
    """One request on a fresh connection, with the path byte for byte as given."""
    base = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(base.hostname, base.port, timeout=timeout)
    target = f"{base.path.rstrip('/')}/{request.function}{request.path}"
    started = time.monotonic()
    try:
        connection.request(request.method, target, body=request.body or None, headers=request.headers)
        response = connection.getresponse()
        return Answer(response.status, response.read(), time.monotonic() - started)
    except TimeoutError:
        return Answer(None, b"", time.monotonic() - started, "timeout")
    except (OSError, http.client.HTTPException) as err:
        return Answer(None, b"", time.monotonic() - started, f"{type(err).__name__}: {err}")
    finally:
        connection.close()


# ---- JSON with verbatim numbers ----


class Raw:
    """JSON text written verbatim: numbers Python would round (12345678901234567.89)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def dumps(value):
    raws = []

    def placeholder(obj):
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\x00raw{len(raws) - 1}\x00"
        raise TypeError(type(obj))

    text = json.dumps(value, separators=(",", ":"), default=placeholder, ensure_ascii=False)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), raw)
    return text.encode("utf-8", "surrogatepass")


def show(value, limit=70):
    """A short rendering of a value for case summaries."""
    if isinstance(value, str) and len(value) > limit:
        return f"<{len(value)} chars {value[:12]!r}...>"
    text = repr(value) if isinstance(value, (str, bytes, Raw)) else dumps(value).decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"...<{len(text)} chars>"


# ---- ids ----


def new_id(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


NON_CANONICAL_IDS = {
    "uppercase": lambda u: u.upper(),
    "braces": lambda u: "{" + u + "}",
    "urn-prefix": lambda u: "urn:uuid:" + u,
    "no-hyphens": lambda u: u.replace("-", ""),
    "too-short": lambda u: u[:-1],
    "too-long": lambda u: u + "0",
    "padded": lambda u: " " + u + " ",
    "misplaced-hyphen": lambda u: u[:7] + "-" + u[7] + u[9:],
}


def in_path(text):
    """An id as a path segment: what a URL cannot carry raw (the spaces of `padded`) is
    percent-encoded; the rest, braces included, is sent as it is."""
    return urllib.parse.quote(text, safe=":{}")


def canonical(text):
    """The canonical form an id could be filed under, or None when no UUID parser takes it."""
    try:
        return str(uuid.UUID(text.strip()))
    except (ValueError, AttributeError):
        return None


# ---- valid input ----


def receipt(rng, kind=None):
    kind = kind or rng.choice(["png", "png2", "pdf"])
    content_type, data = RECEIPTS[kind]
    names = {"png": ["taxi.png", "lunch.png", "parking.png"], "png2": ["team-lunch.png"], "pdf": ["hotel.pdf"]}
    return {"fileName": rng.choice(names[kind]), "contentType": content_type, "data": base64.b64encode(data).decode()}


def amount(rng, decimals=2, low=1, high=900):
    whole = rng.randint(low, high)
    return Raw(f"{whole}.{rng.randint(0, 10 ** decimals - 1):0{decimals}d}" if decimals else str(whole))


def valid_line(rng, api):
    line = {"netAmount": amount(rng), "taxAmount": amount(rng, high=90), "accountRef": {"id": str(rng.randint(40, 49))}}
    if rng.random() < 0.5:
        line["taxRateRef"] = {"id": rng.choice(["23_Bills", "20_Standard", "0_Exempt"])}
    if rng.random() < 0.4:
        tracking = {"id": f"DEPARTMENT_{rng.randint(1, 9)}"}
        if api == "expenses" and rng.random() < 0.5:
            tracking["dataType"] = "trackingCategories"
        line["trackingRefs"] = [tracking]
    return line


def valid_expense(rng, api):
    expense = {
        "id": new_id(rng),
        "type": rng.choice(["Payment", "Payment", "Refund", "Reward", "Chargeback"]),
        "issueDate": rng.choice(["2024-05-21", "2025-01-31", "2024-02-29T09:30:00Z", "2026-11-30T23:59:59+01:00"]),
        "currency": rng.choice(["GBP", "EUR", "USD"]),
        "lines": [valid_line(rng, api) for _ in range(rng.choice([1, 1, 1, 2, 3]))],
        "receipt": receipt(rng),
    }
    if rng.random() < 0.7:
        expense["merchantName"] = rng.choice(["City Cabs", "Grand Hotel", "Dishoom", "Café Zoë", "東京駅"])
    if rng.random() < 0.4:
        expense["notes"] = rng.choice(["Client visit", "Offsite", "x" * 1000])
    if rng.random() < 0.3:
        expense["contactRef"] = {"id": f"SUP-{rng.randint(1, 99)}", contact_type_field(api): "Supplier"}
    if rng.random() < 0.2:
        expense["currencyRate"] = Raw(f"1.{rng.randint(0, 999999999):09d}")
    if api == "expenses" and rng.random() < 0.2:
        expense["reference"] = f"REF-{rng.randint(1, 9999)}"
    return expense


def valid_reimbursable(rng):
    return {
        "id": new_id(rng),
        "contactRef": {"id": str(rng.randint(700, 799))},
        "issueDate": "2024-05-21",
        "dueDate": "2024-06-21",
        "currency": "GBP",
        "lines": [{"description": "Return ticket", "netAmount": amount(rng), "taxAmount": Raw("0"),
                   "accountRef": {"id": "42"}}],
        "receipt": receipt(rng, "pdf"),
    }


def contact_type_field(api):
    return "type" if api == "expenses" else "contactType"


ACCOUNTS = ["bank-main", "card-account", "fx-losses", "fx-gains", "suspense", "7710", "8100", "1200", "card-eur"]
TRANSFER_DATES = ["2024-05-20", "2025-01-31", "2024-02-29T09:30:00Z", "2026-11-30T23:59:59+01:00"]


def minor(units, decimals):
    """An amount of `units` minor units as exact JSON text: minor(-137, 2) is -1.37."""
    sign, units = ("-" if units < 0 else ""), abs(units)
    if not decimals:
        return Raw(f"{sign}{units}")
    return Raw(f"{sign}{units // 10 ** decimals}.{units % 10 ** decimals:0{decimals}d}")


def valid_transfer(rng):
    source, target = rng.sample(ACCOUNTS, 2)
    sent = rng.randint(1, 900_000)
    transfer = {"id": new_id(rng), "date": rng.choice(TRANSFER_DATES),
                "from": {"accountRef": {"id": source}, "amount": minor(sent, 2)},
                # The other account's own currency: the same amount, or another with up to 4 places.
                "to": {"accountRef": {"id": target},
                       "amount": minor(sent, 2) if rng.random() < 0.6 else minor(rng.randint(1, 9_000_000), 4)}}
    if rng.random() < 0.5:
        transfer["description"] = rng.choice(["Card top-up", "Sweep to savings", "Überweisung", "x" * 1000])
    return transfer


def valid_adjustment(rng, currency=None, lines=None):
    """A journal that balances exactly: n-1 signed amounts and the line that zeroes them."""
    currency = currency or rng.choice(["GBP", "GBP", "EUR", "USD", "JPY", "KWD"])
    decimals = CURRENCY_DECIMALS[currency]
    count = lines or rng.choice([2, 2, 2, 3, 4])
    units = [0]
    while not units[-1]:  # no line of zero (the others summing to nothing): draw again
        units = [rng.choice([-1, 1]) * rng.randint(1, 5_000_000) for _ in range(count - 1)]
        units.append(-sum(units))
    adjustment = {"id": new_id(rng), "date": rng.choice(TRANSFER_DATES), "currency": currency,
                  "lines": [adjustment_line(rng, minor(u, decimals)) for u in units]}
    if rng.random() < 0.3:
        adjustment["currencyRate"] = Raw(f"{rng.randint(0, 3)}.{rng.randint(1, 999999999):09d}")
    if rng.random() < 0.4:
        adjustment["reference"] = rng.choice(["FX difference May", "Write-off", f"ADJ-{rng.randint(1, 9999)}"])
    return adjustment


def adjustment_line(rng, amount):
    line = {"amount": amount, "accountRef": {"id": rng.choice(ACCOUNTS)}}
    if rng.random() < 0.3:
        line["description"] = rng.choice(["FX loss", "Card account", "Rounding"])
    if rng.random() < 0.2:
        data_type = rng.choice(["trackingCategories", "customers", "suppliers"])
        line["trackingRefs"] = [{"id": f"{data_type[:3].upper()}-{rng.randint(1, 9)}", "dataType": data_type}]
    if rng.random() < 0.1:
        line["invoiceTo"] = {"id": f"CUST-{rng.randint(1, 9)}", "type": "customer"}
    return line


def valid_batch(rng, api, size, transfers=0.15, adjustments=0.2):
    batch = {"expenses": [valid_expense(rng, api) for _ in range(size)]}
    if api == "expenses" and rng.random() < 0.3:
        batch["reimbursableExpenses"] = [valid_reimbursable(rng)]
    if api == "expenses" and rng.random() < transfers:
        batch["transfers"] = [valid_transfer(rng)]  # each transfer is a PUT, and a sync, of its own
    if api == "expenses" and rng.random() < adjustments:
        batch["adjustments"] = [valid_adjustment(rng) for _ in range(rng.choice([1, 1, 2]))]
    return batch


KINDS = ("expenses", "reimbursableExpenses", "transfers", "adjustments")
# What a valid item of each kind ends as: expenses carry receipts; Codat attaches no file to the rest.
TERMINAL = {"expenses": "uploaded", "reimbursableExpenses": "uploaded", "transfers": "recordedWithoutAttachment",
            "adjustments": "recordedWithoutAttachment"}


def batch_items(batch):
    """(kind, item) of every item of a batch whose id is some spelling of a UUID."""
    return [(kind, item) for kind in KINDS for item in (batch.get(kind) if isinstance(batch.get(kind), list) else [])
            if isinstance(item, dict) and isinstance(item.get("id"), str) and canonical(item["id"])]


def batch_ids(batch):
    return [canonical(item["id"]) for _, item in batch_items(batch)]


def batch_finals(batch):
    """Each id of a valid batch and the status it must end in."""
    return {canonical(item["id"]): TERMINAL[kind] for kind, item in batch_items(batch)}


# ---- cases ----

HOSTILE, VALID, IGNORED, REPLAY = "hostile", "valid", "ignored", "replay"


@dataclass
class Case:
    category: str
    kind: str  # what was done, for grouping violations
    summary: str
    expect: str  # HOSTILE: 4xx; VALID: 2xx (approvals: then uploaded); IGNORED: 2xx "ignored"; REPLAY: not reprocessed
    request: object  # a Request, or a function making one at send time (webhook timestamps)
    prelude: object = None  # sent first, e.g. the genuine delivery a replay copies
    companies: list = field(default_factory=list)  # canonical companies an approval could be filed under
    expense_ids: list = field(default_factory=list)  # canonical ids an approval could create
    finals: dict = field(default_factory=dict)  # valid approvals: id -> the status it must end in
    finals_of_prelude: bool = False  # `finals` are the prelude's (a conflicting replay's original)
    named: dict | None = None  # what the refusal must say: {status, field | field_prefix, words}
    number: int = 0
    answer: Answer | None = None
    prelude_answer: Answer | None = None
    size: int = 0

    def is_approval(self):
        return self.category in APPROVAL_CATEGORIES

    def line(self):
        return f"#{self.number} [{self.category}/{self.kind}] {self.summary}"


def approval(category, kind, summary, body, company, expect=HOSTILE, path=None, companies=None, ids=None, named=None):
    raw = body if isinstance(body, bytes) else dumps(body)
    ids = ids if ids is not None else (batch_ids(body) if isinstance(body, dict) else [])
    finals = batch_finals(body) if expect == VALID and isinstance(body, dict) else {}
    return Case(
        category, kind, f"POST {path or f'/companies/{company}/expenses'} {summary} ({len(raw)} bytes)", expect,
        approval_request(company, raw, path), companies=companies or [company], expense_ids=ids, finals=finals,
        named=named,
    )


def approval_request(company, raw, path=None):
    return Request("POST", "approval-intake", path or f"/companies/{company}/expenses", raw,
                   {"content-type": "application/json"})


class Context:
    """What generators draw from: the random source, the API, and what the seed phase made."""

    def __init__(self, rng, api, seeds, secret):
        self.rng = rng
        self.api = api
        self.seeds = seeds  # [{"company", "ids", "syncId"}] approved before the run
        self.secret = secret
        self.valid_bodies = []  # (company, body bytes, finals) of generated valid approvals, for replays

    def seed(self):
        return self.rng.choice(self.seeds) if self.seeds else None

    def known_sync(self):
        with_sync = [s for s in self.seeds if s.get("syncId")]
        return self.rng.choice(with_sync) if with_sync else None


def gen_valid(ctx):
    rng, company = ctx.rng, new_id(ctx.rng)
    batch = valid_batch(rng, ctx.api, rng.randint(1, 5))
    if rng.random() < 0.15:  # at the documented edges, still valid
        expense = batch["expenses"][0]
        edge = rng.choice(["255-char file name", "100 lines", "9-decimal rate", "JPY whole amount", "year 0001"])
        if edge == "255-char file name":
            expense["receipt"]["fileName"] = "r" * 251 + ".png" if expense["receipt"]["contentType"] == "image/png" \
                else "r" * 251 + ".pdf"
        elif edge == "100 lines":
            expense["lines"] = [valid_line(rng, ctx.api) for _ in range(100)]
        elif edge == "9-decimal rate":
            expense["currencyRate"] = Raw("0.123456789")
        elif edge == "JPY whole amount":
            expense["currency"] = "JPY"
            for line in expense["lines"]:
                line["netAmount"], line["taxAmount"] = amount(rng, 0, 100, 90000), amount(rng, 0, 0, 9000)
        else:
            expense["issueDate"] = "0001-01-01"
    else:
        edge = "plain"
    return valid_case(ctx, "valid", edge, f"valid batch of {len(batch_ids(batch))}", batch, company)


def valid_case(ctx, category, kind, summary, batch, company):
    """A valid approval, kept for the replays."""
    case = approval(category, kind, summary, batch, company, VALID)
    ctx.valid_bodies.append((company, case.request.body, case.finals))
    return case


def gen_replay(ctx):
    if not ctx.valid_bodies:
        return gen_valid(ctx)
    company, body, finals = ctx.rng.choice(ctx.valid_bodies)
    case = approval("replay", "exact re-post", f"exact replay of a valid batch of {len(finals)}", body, company,
                    VALID, ids=list(finals))
    case.finals = dict(finals)
    return case


# One corrupted field: (kind, apis it applies to, mutate(expense, rng, api) -> what was set).
def _line(e):
    return e["lines"][0]


def _set(target, key, value):
    target[key] = value
    return f"{key}={show(value)}"


def _set_line(e, key, value):
    return "lines[0]." + _set(_line(e), key, value)


def _drop_line(e, key):
    return "lines[0]." + _drop(_line(e), key)


def _drop(target, key):
    target.pop(key, None)
    return f"without {key}"


def _expense_as_array(e, rng, api):
    order = ["id", "type", "issueDate", "currency", "currencyRate", "contactRef", "bankAccountRef", "reference",
             "merchantName", "lines", "notes", "postAsDraft", "receipt"]
    values = [e.get(k) for k in order]
    e.clear()
    e["__array__"] = values
    return "the expense as a 13-element array of its field values"


UNKNOWN_NAMES = ["amount", "status", "isAdmin", "__proto__", "syncId", "companyId", "approvedBy", "totalAmount",
                 "Id", "ID", "netamount", "$where", "constructor"]

CORRUPTIONS = [
    ("accountRef as array", "*", lambda e, r, a: _set_line(e, "accountRef", [str(r.randint(1, 999))])),
    ("taxRateRef as array", "*", lambda e, r, a: _set_line(e, "taxRateRef", ["23_Bills"])),
    ("trackingRefs nested array", "*", lambda e, r, a: _set_line(e, "trackingRefs", [[f"x{r.randint(1, 9)}"]])),
    ("trackingRefs nested pair", "expenses",
     lambda e, r, a: _set_line(e, "trackingRefs", [["DEPARTMENT_6", "trackingCategories"]])),
    ("contactRef as pair", "*", lambda e, r, a: _set(e, "contactRef", ["SUP-1", "Supplier"])),
    ("contactRef as triple", "*", lambda e, r, a: _set(
        e, "contactRef", ["SUP-1", None, "Supplier"] if a == "expenses" else ["SUP-1", "Supplier", None])),
    ("receipt as array", "*", lambda e, r, a: _set(e, "receipt", list(e["receipt"].values()))),
    ("lines nested array (full arity)", "*", lambda e, r, a: _set(
        e, "lines", [[Raw("12.50"), Raw("2.50"), {"id": "42"}, None, None, None, None, None]])),
    ("lines nested array (short)", "*", lambda e, r, a: _set(e, "lines", [[Raw("12.50"), Raw("2.50"), {"id": "42"}]])),
    ("bankAccountRef as array", "expenses", lambda e, r, a: _set(e, "bankAccountRef", ["9"])),
    ("invoiceTo as array", "expenses", lambda e, r, a: _set_line(e, "invoiceTo", ["CUST-1", "customer"])),
    ("itemRef as array", "expenses", lambda e, r, a: (_line(e).pop("accountRef"), _set_line(e, "itemRef", ["7"]))[1]),
    ("expense as array", "*", _expense_as_array),
    ("unknown expense field", "*", lambda e, r, a: _set(e, r.choice(UNKNOWN_NAMES), r.choice([1, "x", True, None]))),
    ("unknown line field", "*", lambda e, r, a: _set_line(e, r.choice(UNKNOWN_NAMES), "x")),
    ("unknown receipt field", "*", lambda e, r, a: "receipt." + _set(e["receipt"], r.choice(["url", "size", "path"]), "/etc/passwd")),
    ("unknown ref field", "*", lambda e, r, a: _set_line(e, "accountRef", {"id": "42", "name": "Travel"})),
    ("netAmount as bool", "*", lambda e, r, a: _set_line(e, "netAmount", True)),
    ("netAmount as object", "*", lambda e, r, a: _set_line(e, "netAmount", {"value": 12})),
    ("netAmount as array", "*", lambda e, r, a: _set_line(e, "netAmount", [12])),
    ("netAmount null", "*", lambda e, r, a: _set_line(e, "netAmount", None)),
    ("id as number", "*", lambda e, r, a: _set(e, "id", r.randint(1, 10 ** 12))),
    ("type lowercase", "*", lambda e, r, a: _set(e, "type", "payment")),
    ("type as number", "*", lambda e, r, a: _set(e, "type", 0)),
    ("lines as object", "*", lambda e, r, a: _set(e, "lines", _line(e))),
    ("postAsDraft as string", "expenses", lambda e, r, a: _set(e, "postAsDraft", "true")),
    ("merchantName as number", "*", lambda e, r, a: _set(e, "merchantName", 42)),
    ("receipt.data as number", "*", lambda e, r, a: "receipt." + _set(e["receipt"], "data", 12345)),
    ("issueDate as number", "*", lambda e, r, a: _set(e, "issueDate", 20240521)),
    ("currency null", "*", lambda e, r, a: _set(e, "currency", None)),
    ("missing id", "*", lambda e, r, a: _drop(e, "id")),
    ("missing type", "*", lambda e, r, a: _drop(e, "type")),
    ("missing issueDate", "*", lambda e, r, a: _drop(e, "issueDate")),
    ("missing currency", "*", lambda e, r, a: _drop(e, "currency")),
    ("missing lines", "*", lambda e, r, a: _drop(e, "lines")),
    ("missing receipt", "*", lambda e, r, a: _drop(e, "receipt")),
    ("missing receipt.data", "*", lambda e, r, a: "receipt." + _drop(e["receipt"], "data")),
    ("missing receipt.fileName", "*", lambda e, r, a: "receipt." + _drop(e["receipt"], "fileName")),
    ("missing netAmount", "*", lambda e, r, a: _drop_line(e, "netAmount")),
    ("missing accountRef", "*", lambda e, r, a: _drop_line(e, "accountRef")),
    ("missing taxAmount", "v1", lambda e, r, a: _drop_line(e, "taxAmount")),
    ("empty lines", "*", lambda e, r, a: _set(e, "lines", [])),
    ("101 lines", "*", lambda e, r, a: _set(e, "lines", [_line(e)] * 101)),
    ("11 trackingRefs", "*", lambda e, r, a: _set_line(e, "trackingRefs", [{"id": f"T{i}"} for i in range(11)])),
    ("contactRef.id blank", "*", lambda e, r, a: _set(e, "contactRef", {"id": "   "})),
    ("both accountRef and itemRef", "expenses", lambda e, r, a: _set_line(e, "itemRef", {"id": "7"})),
    ("other API's contact field", "*", lambda e, r, a: _set(
        e, "contactRef", {"id": "SUP-1", ("contactType" if a == "expenses" else "type"): "Supplier"})),
    ("contact type not Supplier", "*", lambda e, r, a: _set(e, "contactRef", {"id": "1", contact_type_field(a): "Customer"})),
    ("TransferIn on the current API", "expenses", lambda e, r, a: _set(e, "type", "TransferIn")),
]


def expense_body(batch):
    """The batch as JSON, with an expense replaced by `__array__` written as that array."""
    for key in ("expenses", "reimbursableExpenses"):
        batch[key] = [e["__array__"] if isinstance(e, dict) and "__array__" in e else e for e in batch.get(key, [])]
    return batch


def corrupted_batch(ctx, category, choices):
    """A valid batch of 2-5 expenses with one expense changed by one of `choices`."""
    rng = ctx.rng
    kind, _, mutate = rng.choice([c for c in choices if c[1] in ("*", ctx.api)])
    company = new_id(rng)
    batch = {"expenses": [valid_expense(rng, ctx.api) for _ in range(rng.randint(2, 5))]}
    ids = batch_ids(batch)
    at = rng.randrange(len(batch["expenses"]))
    what = mutate(batch["expenses"][at], rng, ctx.api)
    summary = f"batch of {len(ids)}, expenses[{at}]: {what}"
    return approval(category, kind, summary, expense_body(batch), company, ids=ids)


def gen_corrupt_field(ctx):
    return corrupted_batch(ctx, "corrupt-field", CORRUPTIONS)


def _body_text(ctx):
    return dumps(valid_batch(ctx.rng, ctx.api, ctx.rng.randint(1, 3))).decode()


FRAMINGS = [
    ("trailing object", lambda t, r: t + " {}"),
    ("trailing garbage", lambda t, r: t + r.choice(["x", "]", "}", ",", "\x00", " // comment", ";"])),
    ("second document", lambda t, r: t + r.choice(["", "\n", " "]) + t),
    ("trailing array", lambda t, r: t + "\n[]"),
    ("truncated", lambda t, r: t[: r.randrange(1, len(t) - 1)]),
    ("single quotes", lambda t, r: t.replace('"', "'")),
    ("trailing comma", lambda t, r: t[:-1] + ",}"),
    ("NaN amount", lambda t, r: t.replace('"netAmount":', '"netAmount":NaN,"x":', 1)),
    ("Infinity amount", lambda t, r: t.replace('"netAmount":', '"netAmount":Infinity,"x":', 1)),
    ("1E400 amount", lambda t, r: t.replace('"netAmount":', '"netAmount":1E400,"x":', 1)),
    ("comment inside", lambda t, r: t.replace("{", "{/* c */", 1)),
    ("lone surrogate", lambda t, r: t.replace('"merchantName":"', '"merchantName":"\\ud800', 1)
     if '"merchantName":"' in t else t.replace('"currency":"', '"currency":"\\udfff', 1)),
    ("unterminated string", lambda t, r: t[: t.index('"type":"') + 9]),
    ("duplicate key", lambda t, r: t.replace('"type":', '"type":"Refund","type":', 1)),
    ("deep nesting", lambda t, r: "[" * 100000 + "]" * 100000),
    ("empty body", lambda t, r: ""),
    ("whitespace body", lambda t, r: " \n\t "),
    ("null body", lambda t, r: "null"),
    ("top-level array", lambda t, r: "[" + t + "]"),
    ("top-level string", lambda t, r: json.dumps(t)),
    ("top-level number", lambda t, r: "0"),
    ("empty object", lambda t, r: "{}"),
    ("expenses null", lambda t, r: '{"expenses":null}'),
    ("expenses as object", lambda t, r: '{"expenses":' + json.dumps({"0": {"id": "x"}}) + "}"),
    ("both lists empty", lambda t, r: '{"expenses":[],"reimbursableExpenses":[]}'),
    ("unknown top-level field", lambda t, r: t[:-1] + ',"dryRun":true}'),
]


def gen_framing(ctx):
    rng = ctx.rng
    kind, frame = rng.choice(FRAMINGS)
    text = _body_text(ctx)
    ids = batch_ids(json.loads(text))
    raw = frame(text, rng).encode("utf-8", "surrogatepass")
    return approval("framing", kind, kind, raw, new_id(rng), ids=ids)


def gen_invalid_utf8(ctx):
    text = _body_text(ctx)
    raw = text.encode().replace(b'"currency":"', b'"currency":"\xff\xfe', 1)
    return approval("framing", "invalid UTF-8", "invalid UTF-8 inside a string", raw, new_id(ctx.rng),
                    ids=batch_ids(json.loads(text)))


def gen_bad_id(ctx):
    """A valid batch whose expense id (in the body) is a non-canonical spelling of a UUID."""
    rng = ctx.rng
    kind = rng.choice(list(NON_CANONICAL_IDS))
    batch = valid_batch(rng, ctx.api, rng.randint(1, 4))
    ids = batch_ids(batch)
    items = batch_items(batch)
    where, item = items[rng.randrange(len(items))]
    at = batch[where].index(item)
    spelled = NON_CANONICAL_IDS[kind](item["id"])
    item["id"] = spelled
    noun = {"transfers": "transfer", "adjustments": "adjustment"}.get(where, "expense")
    return approval("bad-id", f"{noun} id {kind}", f"batch of {len(ids)}, {where}[{at}].id={spelled!r}",
                    batch, new_id(rng), ids=ids)


def path_attacks(company, other, rest):
    """(kind, path, companies it could be filed under) for one route; `rest` follows the company."""
    return [
        ("dot-dot segment", f"/companies/{other}/../{company}{rest}", [other, company]),
        ("encoded dot-dot", f"/companies/{other}/%2e%2e/{company}{rest}", [other, company]),
        ("encoded dot-dot (upper)", f"/companies/{other}/%2E%2E/{company}{rest}", [other, company]),
        ("dot segment", f"/companies/{company}/.{rest}", [company]),
        ("double slashes", f"//companies//{company}/{rest}", [company]),
        ("trailing dot-dot", f"/companies/{company}{rest}/extra/..", [company]),
        ("extra segment", f"/companies/{company}{rest}/extra", [company]),
        ("encoded slash", f"/companies/{other}%2F..%2F{company}{rest}", [other, company]),
        ("trailing slash dot", f"/companies/{company}{rest}/.", [company]),
        ("semicolon parameter", f"/companies/{company};v=1{rest}", [company]),
        ("percent-encoded braces", f"/companies/%7B{company}%7D{rest}", [company]),
    ]


def gen_bad_path(ctx):
    """A fully valid batch posted to a hostile path: non-canonical company id, dot segments, ..."""
    rng = ctx.rng
    company, other = new_id(rng), new_id(rng)
    batch = valid_batch(rng, ctx.api, rng.randint(1, 3))
    choices = [(f"company id {k}", f"/companies/{in_path(f(company))}/expenses", [company])
               for k, f in NON_CANONICAL_IDS.items()]
    choices += path_attacks(company, other, "/expenses")
    choices += [("wrong last segment", f"/companies/{company}/receipts", [company]),
                ("no company", "/companies//expenses", []),
                ("company id empty braces", "/companies/{}/expenses", [])]
    kind, path, companies = rng.choice(choices)
    return approval("bad-path", kind, f"valid batch of {len(batch_ids(batch))}", batch, company, path=path,
                    companies=companies)


CURRENCY_DECIMALS = {"GBP": 2, "EUR": 2, "USD": 2, "JPY": 0, "KRW": 0, "ISK": 0, "KWD": 3, "BHD": 3, "OMR": 3,
                     "CLF": 4}
NOT_ISO_4217 = ["ABC", "QQQ", "ZZZ", "AAA", "BTC", "ETH", "RMB", "NTD", "GBX", "UKP", "XYZ"]
NOT_A_CURRENCY = ["XXX", "XAU", "XAG", "XPT", "XPD", "XTS"]  # ISO 4217 X-codes: no currency, metals, testing
BAD_CURRENCY_TEXT = ["gbp", "Gbp", "GB", "GBPP", "G B", "123", "", "£", "€UR", " GBP"]
MAGNITUDES = ["1e19", "9e27", "1.8e19", "12345678901234567.89", "-1e19", "7.9228162514264337593543950336e28",
              "1e29", "99999999999999999999999999999", "0.00000000000000000000000000001", "1e-30"]


def gen_money(ctx):
    rng = ctx.rng
    choice = rng.choice(["non-ISO currency", "X-code currency", "malformed currency", "too many decimals",
                         "magnitude", "amount as string", "rate over 9 decimals", "rate not positive",
                         "rate as string", "tax too many decimals"])

    def mutate(e, r, a):
        line = _line(e)
        if choice == "non-ISO currency":
            return _set(e, "currency", r.choice(NOT_ISO_4217))
        if choice == "X-code currency":
            return _set(e, "currency", r.choice(NOT_A_CURRENCY))
        if choice == "malformed currency":
            return _set(e, "currency", r.choice(BAD_CURRENCY_TEXT))
        if choice in ("too many decimals", "tax too many decimals"):
            currency = r.choice(list(CURRENCY_DECIMALS))
            places = CURRENCY_DECIMALS[currency] + r.randint(1, 4)
            e["currency"] = currency
            text = f"{r.randint(1, 999)}.{r.randint(1, 10 ** places - 1):0{places}d}"
            if text.endswith("0"):
                text = text[:-1] + "7"
            key = "netAmount" if choice == "too many decimals" else "taxAmount"
            for other in e["lines"]:
                other["netAmount"], other["taxAmount"] = amount(r, CURRENCY_DECIMALS[currency]), Raw("0")
            return f"currency={currency} " + _set(line, key, Raw(text))
        if choice == "magnitude":
            return _set(line, r.choice(["netAmount", "taxAmount"]), Raw(r.choice(MAGNITUDES)))
        if choice == "amount as string":
            return _set(line, r.choice(["netAmount", "taxAmount"]), r.choice(["12.50", "1e3", "0x10", "twelve", " 5"]))
        if choice == "rate over 9 decimals":
            return _set(e, "currencyRate", Raw(r.choice(["1.0000000001", "0.12345678901", "1.2345678901234567890"])))
        if choice == "rate not positive":
            return _set(e, "currencyRate", Raw(r.choice(["0", "-1", "-0.5", "0.0", "-0"])))
        return _set(e, "currencyRate", r.choice(["1.2", "0", ""]))

    return corrupted_batch(ctx, "money", [(choice, "*", mutate)])


BAD_DATES = ["+12345-01-01", "-0001-01-01", "10000-01-01", "0000-01-01", "0000-12-31T00:00:00Z", "2024-02-30",
             "2023-02-29", "2024-13-01", "2024-00-10", "2024-05-00", "2024-1-5", "2024-05-21T25:00:00Z",
             "2024-05-21T00:00:00", "20240521", "2024-W21-2", "2024-05-21Z", "+002024-05-21", "-262144-01-01",
             "+262143-12-31", "9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z", "21/05/2024", ""]


def gen_dates(ctx):
    rng = ctx.rng
    bad = rng.choice(BAD_DATES)
    if ctx.api == "expenses" and rng.random() < 0.25:
        company = new_id(rng)
        batch = valid_batch(rng, ctx.api, rng.randint(1, 3))
        reimbursable = valid_reimbursable(rng)
        reimbursable["dueDate"] = bad
        batch["reimbursableExpenses"] = [reimbursable]
        return approval("dates", f"dueDate {bad!r}", f"batch of {len(batch_ids(batch))}, reimbursable dueDate={bad!r}",
                        batch, company)
    return corrupted_batch(ctx, "dates", [(f"issueDate {bad!r}", "*", lambda e, r, a: _set(e, "issueDate", bad))])


CONTROL_TEXT = ["\x00", "\x1b[31mred\x1b[0m", "line\nbreak", "\x7f", "\u202egnp.exe", "\u200b", "\ufeff"]


def gen_strings(ctx):
    rng = ctx.rng
    n = 100_000
    choices = [
        ("accountRef.id 420,000 chars", "*", lambda e, r, a: _set_line(e, "accountRef", {"id": "A" * 420_000})),
        ("merchantName 100k chars", "*", lambda e, r, a: _set(e, "merchantName", "M" * n)),
        ("notes 100k chars", "*", lambda e, r, a: _set(e, "notes", "N" * n)),
        ("reference 100k chars", "expenses", lambda e, r, a: _set(e, "reference", "R" * n)),
        ("taxRateRef.id 100k chars", "*", lambda e, r, a: _set_line(e, "taxRateRef", {"id": "T" * n})),
        ("trackingRefs id 100k chars", "*", lambda e, r, a: _set_line(e, "trackingRefs", [{"id": "D" * n}])),
        ("contactRef.id 100k chars", "*", lambda e, r, a: _set(e, "contactRef", {"id": "C" * n})),
        ("bankAccountRef.id 100k chars", "expenses", lambda e, r, a: _set(e, "bankAccountRef", {"id": "B" * n})),
        ("100 lines of maximal text", "*", _maximal_lines),
        ("control chars in merchantName", "*", lambda e, r, a: _set(e, "merchantName", "Cab" + r.choice(CONTROL_TEXT))),
        ("control chars in accountRef.id", "*", lambda e, r, a: _set_line(e, "accountRef",
                                                                      {"id": "42" + r.choice(CONTROL_TEXT)})),
    ]
    if ctx.api == "expenses" and rng.random() < 0.15:
        company = new_id(rng)
        batch = valid_batch(rng, ctx.api, rng.randint(1, 3))
        reimbursable = valid_reimbursable(rng)
        reimbursable["lines"][0]["description"] = "D" * n
        batch["reimbursableExpenses"] = [reimbursable]
        return approval("strings", "line description 100k chars", f"batch of {len(batch_ids(batch))}, "
                        "reimbursable line description of 100k chars", batch, company)
    return corrupted_batch(ctx, "strings", choices)


def _maximal_lines(e, rng, api):
    """100 lines, every text at the longest the parser allows (1000) or unbounded ids at 1000 too."""
    text = "W" * 1000
    line = {"netAmount": Raw("1.00"), "taxAmount": Raw("0.20"), "accountRef": {"id": text}, "taxRateRef": {"id": text},
            "trackingRefs": [{"id": text + str(i)} for i in range(10)]}
    e["lines"] = [dict(line) for _ in range(100)]
    e["notes"] = e["merchantName"] = text
    return "100 lines x (accountRef, taxRateRef, 10 trackingRefs of 1000 chars) + 1000-char notes"


BIDI_AND_INVISIBLE = {"RLO U+202E": "\u202e", "LRO U+202D": "\u202d", "RLI U+2067": "\u2067", "LRM U+200E": "\u200e",
                      "ALM U+061C": "\u061c", "ZWSP U+200B": "\u200b", "ZWJ U+200D": "\u200d", "BOM U+FEFF": "\ufeff",
                      "soft hyphen U+00AD": "\u00ad", "line separator U+2028": "\u2028"}
CONTROLS = {"NUL": "\x00", "newline": "\n", "ESC": "\x1b", "DEL": "\x7f", "NEL U+0085": "\x85", "tab": "\t"}


def gen_receipts(ctx):
    rng = ctx.rng
    png = RECEIPTS["png"][1]
    mismatches = [
        ("webp with WAVE bytes", "image/webp", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(rng.randrange(256) for _ in range(32))),
        ("pdf with PNG bytes", "application/pdf", png),
        ("png with PDF bytes", "image/png", RECEIPTS["pdf"][1]),
        ("png magic then HTML", "image/png", b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>"),
        ("jpeg magic then zip", "image/jpeg", b"\xff\xd8\xffPK\x03\x04" + bytes(20)),
        ("gif with text", "image/gif", b"GIF89a;<?php system($_GET['c']); ?>"),
        ("svg", "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"),
        ("html", "text/html", b"<html></html>"),
        ("content type with parameter", "image/png; charset=binary", png),
    ]
    names = [(f"file name with {k}", rng.choice([f"invoice{c}gnp.exe", f"receipt{c}.png", f"{c}taxi.png"]))
             for k, c in BIDI_AND_INVISIBLE.items()]
    names += [(f"file name with {k}", f"taxi{c}.png") for k, c in CONTROLS.items()]
    names += [("file name ../", "../../etc/passwd"), ("file name /", "/etc/passwd"), ("file name ..", ".."),
              ("file name .", "."), ("file name backslash", "..\\..\\boot.ini"),
              ("file name encoded traversal", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
              ("file name 256 chars", "n" * 252 + ".png"), ("file name 100k chars", "n" * 100_000),
              ("file name 300 chars", "n" * 296 + ".png"), ("file name blank", "   ")]
    datas = [("empty receipt", ""), ("bad base64", "***"), ("base64 without padding", "iVBORw0KGgo"),
             ("url-safe base64", base64.urlsafe_b64encode(b"\xfb\xff" + png).decode().replace("+", "-")),
             ("base64 with newline", base64.b64encode(png).decode()[:20] + "\n" + base64.b64encode(png).decode()[20:]),
             ("data URL", "data:image/png;base64," + base64.b64encode(png).decode()),
             ("base64 of nothing", "===="),
             ("receipt 1 byte over the API's limit", base64.b64encode(png + bytes(receipt_limit(ctx.api) + 1 - len(png))).decode())]
    group = rng.choice([mismatches, mismatches, names, names, names, datas])
    kind, *variant = rng.choice(group)

    def mutate(e, r, a):
        if group is mismatches:
            content_type, data = variant
            e["receipt"].update(contentType=content_type, data=base64.b64encode(data).decode())
            return f"receipt contentType={content_type!r} with bytes {data[:24]!r}"
        e["receipt"].update(contentType="image/png", data=base64.b64encode(png).decode())
        return "receipt." + _set(e["receipt"], "fileName" if group is names else "data", variant[0])

    return corrupted_batch(ctx, "receipts", [(kind, "*", mutate)])


def receipt_limit(api):
    """The largest receipt intake takes (README: 3 MB on the current API, 4 MB on v1)."""
    return 3 * 1024 * 1024 if api == "expenses" else 4 * 1024 * 1024


def gen_oversize(ctx):
    """More than Lambda's 6 MB: receipts each within the API's limit, or padding whitespace."""
    rng = ctx.rng
    company = new_id(rng)
    limit = receipt_limit(ctx.api)
    kind = rng.choice(["receipts each within limit", "whitespace padding", "one receipt over limit"])
    batch = valid_batch(rng, ctx.api, 3 if kind == "receipts each within limit" else 1)
    for other in KINDS[1:]:
        batch.pop(other, None)
    if kind == "receipts each within limit":
        for expense in batch["expenses"]:
            data = RECEIPTS["png"][1] + bytes(limit - 4096 - len(RECEIPTS["png"][1]))
            expense["receipt"] = {"fileName": "big.png", "contentType": "image/png",
                                  "data": base64.b64encode(data).decode()}
        raw = dumps(batch)
    elif kind == "whitespace padding":
        raw = dumps(batch).replace(b'{"expenses":', b'{"expenses":' + b" " * (6 * 1024 * 1024 + 1024), 1)
    else:
        data = RECEIPTS["png"][1] + bytes(7 * 1024 * 1024)
        batch["expenses"][0]["receipt"]["data"] = base64.b64encode(data).decode()
        raw = dumps(batch)
    return approval("oversize", kind, f"{kind}", raw, company, ids=batch_ids(batch))


# ---- transfers and adjustments ----


def mixed_batch(rng, api, transfers=(1, 3), adjustments=(1, 2), expenses=(0, 3)):
    """Valid siblings of every kind around the transfers and adjustments under test."""
    batch = {}
    if count := rng.randint(*expenses):
        batch["expenses"] = [valid_expense(rng, api) for _ in range(count)]
    if rng.random() < 0.25:
        batch["reimbursableExpenses"] = [valid_reimbursable(rng)]
    if count := rng.randint(*transfers):
        batch["transfers"] = [valid_transfer(rng) for _ in range(count)]
    if count := rng.randint(*adjustments):
        batch["adjustments"] = [valid_adjustment(rng) for _ in range(count)]
    return batch


def exact(raw):
    return Decimal(raw.text if isinstance(raw, Raw) else str(raw))


def text_of(value):
    """A decimal as plain JSON number text (never exponent notation)."""
    return Raw(format(value, "f"))


def float_only_balance(rng):
    """A currency with 3 or 4 decimal places and two lines, +x and -(x - one minor unit), that
    are the same double: they total 0 read as floats, one minor unit read as decimals."""
    currency = rng.choice(["KWD", "BHD", "OMR", "CLF"])
    decimals = CURRENCY_DECIMALS[currency]
    while True:
        units = rng.randint(10 ** 12, 10 ** 13 - 1) * 10 ** decimals + rng.randint(1, 10 ** decimals - 1)
        debit, credit = minor(units, decimals), minor(-(units - 1), decimals)
        if float(debit.text) + float(credit.text) == 0.0:
            return currency, debit, credit


def _side_name(rng):
    return rng.choice(["from", "to"])


TRANSFER_ZERO = ["0", "0.0", "0.0000", "-0", "0e5", "-0.00"]
TRANSFER_NEGATIVE = ["-1", "-0.01", "-500.00", "-0.0001", "-9999999999999.9999"]
TRANSFER_PRECISE = ["1.00001", "0.00001", "100.12345", "12.50000001", "1.0000000000000000000000000001", "5e-5"]
TRANSFER_LARGE = ["10000000000000", "1e13", "1E+13", "10000000000000.0001", "99999999999999",
                  "1.00000000000001e13"]


def _transfer_mutations():
    """(kind, mutate(transfer, rng) -> (what was set, the field the 400 must name or None))."""
    def side_value(values, raw=True):
        def mutate(t, r):
            side, value = _side_name(r), r.choice(values)
            t[side]["amount"] = Raw(value) if raw else value
            return f"{side}.amount={show(t[side]['amount'])}", f".{side}.amount" if raw else None
        return mutate

    def on_side(change):
        def mutate(t, r):
            side = _side_name(r)
            return f"{side}." + change(t[side], r), None
        return mutate

    def same_account(t, r):
        t["to"]["accountRef"] = dict(t["from"]["accountRef"])
        return f"to.accountRef={show(t['to']['accountRef'])} (the from account)", ".to.accountRef.id"

    def as_values(t, r):
        values = [t.get(k) for k in ("id", "date", "description", "from", "to")]
        t.clear()
        t["__array__"] = values
        return "the transfer as an array of its field values", None

    def side_as_values(t, r):
        side = _side_name(r)
        t[side] = [t[side]["accountRef"], t[side]["amount"]]
        return f"{side} as [accountRef, amount]", None

    def unknown(t, r):
        name = r.choice(["currency", "type", "amount", "status", "lines", "accountRef", "syncId", "bankAccountRef",
                         "currencyRate", "Description", "__proto__"])
        return _set(t, name, r.choice(["GBP", 1, True, None, {"id": "42"}])), None

    return [
        ("receipt on a transfer", lambda t, r: (_set(t, "receipt", receipt(r)), ".receipt")),
        ("empty receipt object on a transfer", lambda t, r: (_set(t, "receipt", {}), ".receipt")),
        ("from = to", same_account),
        ("amount zero", side_value(TRANSFER_ZERO)),
        ("amount negative", side_value(TRANSFER_NEGATIVE)),
        ("amount over 4 decimals", side_value(TRANSFER_PRECISE)),
        ("amount 13+ digits", side_value(TRANSFER_LARGE)),
        ("amount magnitude", lambda t, r: side_value(MAGNITUDES)(t, r)[:1] + (None,)),
        ("amount as string", side_value(["500.00", "1e3", "twelve", "", " 5"], raw=False)),
        ("amount as bool", side_value([True, False], raw=False)),
        ("amount null", side_value([None], raw=False)),
        ("amount as object", side_value([{"value": 5}, {"amount": 5, "currency": "GBP"}], raw=False)),
        ("amount as array", side_value([[5], [Raw("5.00"), "GBP"]], raw=False)),
        ("missing amount", on_side(lambda s, r: _drop(s, "amount"))),
        ("missing accountRef", on_side(lambda s, r: _drop(s, "accountRef"))),
        ("side as [accountRef, amount]", side_as_values),
        ("side as array of itself", lambda t, r: (_set(t, (side := _side_name(r)), [t[side]]), None)),
        ("side as string", lambda t, r: (_set(t, _side_name(r), "bank-main"), None)),
        ("accountRef as array", on_side(lambda s, r: _set(s, "accountRef", [s["accountRef"]["id"]]))),
        ("accountRef as string", on_side(lambda s, r: _set(s, "accountRef", s["accountRef"]["id"]))),
        ("accountRef.id blank", on_side(lambda s, r: _set(s, "accountRef", {"id": r.choice(["", "   "])}))),
        ("accountRef.id control chars", on_side(lambda s, r: _set(s, "accountRef", {"id": "bank" + r.choice(CONTROL_TEXT)}))),
        ("accountRef.id 256 chars", on_side(lambda s, r: _set(s, "accountRef", {"id": "A" * 256}))),
        ("accountRef.id as number", on_side(lambda s, r: _set(s, "accountRef", {"id": 42}))),
        ("unknown accountRef field", on_side(lambda s, r: _set(s, "accountRef", {"id": "7710", "name": "Bank"}))),
        ("unknown side field", on_side(lambda s, r: _set(s, r.choice(["currency", "currencyRate", "id"]), "GBP"))),
        ("unknown transfer field", unknown),
        ("missing id", lambda t, r: (_drop(t, "id"), None)),
        ("missing date", lambda t, r: (_drop(t, "date"), None)),
        ("missing from", lambda t, r: (_drop(t, "from"), None)),
        ("missing to", lambda t, r: (_drop(t, "to"), None)),
        ("the transfer as an array", as_values),
        ("bad date", lambda t, r: (_set(t, "date", r.choice(BAD_DATES)), ".date")),
        ("date as number", lambda t, r: (_set(t, "date", 20240520), None)),
        ("description 1001 chars", lambda t, r: (_set(t, "description", "D" * 1001), ".description")),
        ("description control chars", lambda t, r: (_set(t, "description", "top" + r.choice(
            ["\x00", "\x1b[31m", "\u202egnp", "\u200b", "\ufeff", "\u2028"])), ".description")),
        ("description as number", lambda t, r: (_set(t, "description", 7), None)),
        ("id as number", lambda t, r: (_set(t, "id", r.randint(1, 10 ** 12)), None)),
    ]


def _adjustment_mutations():
    """(kind, mutate(adjustment, rng) -> (what was set, the field the 400 must name or None))."""
    def decimals(a):
        return CURRENCY_DECIMALS[a["currency"]]

    def off_by_one_unit(a, r):
        at = r.randrange(len(a["lines"]))
        line = a["lines"][at]
        unit = Decimal(1).scaleb(-decimals(a))
        line["amount"] = text_of(exact(line["amount"]) + r.choice([unit, -unit]))
        return f"currency={a['currency']}, lines[{at}].amount={show(line['amount'])}: one minor unit off", ".lines"

    def in_currency(currency, lines):
        def mutate(a, r):
            a["currency"] = currency
            a.pop("currencyRate", None)
            a["lines"] = [adjustment_line(r, text_of(Decimal(x))) for x in lines]
            return f"currency={currency}, lines amounts {lines}", None
        return mutate

    def float_balanced(a, r):
        currency, debit, credit = float_only_balance(r)
        a["currency"] = currency
        a["lines"] = [adjustment_line(r, debit), adjustment_line(r, credit)]
        return f"currency={currency}, lines {debit.text} and {credit.text}: 0 as floats, not as decimals", ".lines"

    def one_line(a, r):
        a["lines"] = a["lines"][:1]
        return f"only lines[0] ({a['lines'][0]['amount'].text})", ".lines"

    def flipped(a, r):
        at = r.randrange(len(a["lines"]))
        a["lines"][at]["amount"] = text_of(-exact(a["lines"][at]["amount"]))
        return f"lines[{at}] sign flipped: total {format(sum(exact(l['amount']) for l in a['lines']), 'f')}", ".lines"

    def last_of_100(a, r):
        unit = Decimal(1).scaleb(-decimals(a))
        lines = [adjustment_line(r, minor(u, decimals(a))) for u in [500, -500] * 50]
        lines[-1]["amount"] = text_of(exact(lines[-1]["amount"]) - unit)
        a["lines"] = lines
        return "100 lines, the last one minor unit off", ".lines"

    def too_precise(a, r):
        extra = r.randint(1, 3)
        places = decimals(a) + extra
        units = r.randint(1, 10 ** 6) * 10 + r.randint(1, 9)  # a last digit that is not 0
        a["lines"] = [adjustment_line(r, minor(units, places)), adjustment_line(r, minor(-units, places))]
        return (f"currency={a['currency']}, lines {a['lines'][0]['amount'].text} and {a['lines'][1]['amount'].text}"
                f" (balanced, {places} places)", ".lines[0].amount")

    def large(a, r):
        big = r.choice(["10000000000000", "1e13", "-10000000000000.00", "123456789012345"])
        value = exact(Raw(big))
        a["lines"] = [adjustment_line(r, Raw(big)), adjustment_line(r, text_of(-value))]
        return f"lines {big} and {format(-value, 'f')} (balanced, 14 integer digits)", ".lines[0].amount"

    def magnitude(a, r):
        big = r.choice(MAGNITUDES)
        a["lines"] = [adjustment_line(r, Raw(big)), adjustment_line(r, Raw(big[1:] if big.startswith("-") else "-" + big))]
        return f"lines {big} and its negation", None

    def line_value(name, values):
        def mutate(a, r):
            at = r.randrange(len(a["lines"]))
            return f"lines[{at}]." + _set(a["lines"][at], name, r.choice(values)), None
        return mutate

    def on_line(change):
        def mutate(a, r):
            at = r.randrange(len(a["lines"]))
            return f"lines[{at}]." + change(a["lines"][at], r), None
        return mutate

    def line_as_values(a, r):
        at = r.randrange(len(a["lines"]))
        line = a["lines"][at]
        a["lines"][at] = [line["amount"], line["accountRef"], line.get("description"), line.get("trackingRefs"),
                          line.get("invoiceTo")]
        return f"lines[{at}] as an array of its field values", None

    def as_values(a, r):
        values = [a.get(k) for k in ("id", "date", "currency", "currencyRate", "reference", "lines")]
        a.clear()
        a["__array__"] = values
        return "the adjustment as an array of its field values", None

    def unknown(a, r):
        name = r.choice(["type", "notes", "merchantName", "totalAmount", "receipts", "bankAccountRef", "contactRef",
                         "postAsDraft", "Lines", "constructor"])
        return _set(a, name, r.choice(["x", 1, True, None, []])), None

    return [
        ("receipt on an adjustment", lambda a, r: (_set(a, "receipt", receipt(r)), ".receipt")),
        ("empty receipt object on an adjustment", lambda a, r: (_set(a, "receipt", {}), ".receipt")),
        ("unbalanced by one minor unit", off_by_one_unit),
        ("unbalanced by one yen", lambda a, r: (in_currency("JPY", ["1500", "-1499"])(a, r)[0], ".lines")),
        ("unbalanced by one fils", lambda a, r: (in_currency("KWD", ["10.125", "-10.124"])(a, r)[0], ".lines")),
        ("unbalanced in the last of 100 lines", last_of_100),
        ("balanced only as floats", float_balanced),
        ("a single line", one_line),
        ("a sign flipped", flipped),
        ("amount over the currency's decimals", too_precise),
        ("1.50 JPY", lambda a, r: (in_currency("JPY", ["1.50", "-1.50"])(a, r)[0], ".lines[0].amount")),
        ("amount 14 integer digits", large),
        ("amount magnitude", magnitude),
        ("amount as string", line_value("amount", ["1.37", "-1.37", "1e3", "", "zero"])),
        ("amount as bool", line_value("amount", [True, False])),
        ("amount null", line_value("amount", [None])),
        ("amount as object", line_value("amount", [{"value": 1}, {"debit": Raw("1.00")}])),
        ("amount as array", line_value("amount", [[1], [Raw("1.00"), Raw("-1.00")]])),
        ("missing amount", on_line(lambda l, r: _drop(l, "amount"))),
        ("missing accountRef", on_line(lambda l, r: _drop(l, "accountRef"))),
        ("line as array", line_as_values),
        ("accountRef as array", on_line(lambda l, r: _set(l, "accountRef", [l["accountRef"]["id"]]))),
        ("accountRef.id blank", on_line(lambda l, r: _set(l, "accountRef", {"id": " "}))),
        ("unknown accountRef field", on_line(lambda l, r: _set(l, "accountRef", {"id": "7710", "type": "asset"}))),
        ("trackingRefs nested array", line_value("trackingRefs", [[["SUP-1", "suppliers"]], [["x"]]])),
        ("trackingRefs as object", line_value("trackingRefs", [{"id": "SUP-1", "dataType": "suppliers"}])),
        ("trackingRefs unknown dataType", line_value("trackingRefs", [
            [{"id": "E-1", "dataType": t}] for t in ("employees", "TrackingCategories", "projects", "")])),
        ("trackingRefs empty", line_value("trackingRefs", [[]])),
        ("11 trackingRefs", line_value("trackingRefs", [[{"id": f"T{i}"} for i in range(11)]])),
        ("invoiceTo as array", line_value("invoiceTo", [["CUST-1", "customer"]])),
        ("invoiceTo type supplier", line_value("invoiceTo", [{"id": "SUP-1", "type": "supplier"}])),
        ("unknown invoiceTo field", line_value("invoiceTo", [{"id": "CUST-1", "type": "customer", "name": "x"}])),
        ("unknown line field", on_line(lambda l, r: _set(l, r.choice(
            ["netAmount", "taxAmount", "taxRateRef", "debit", "credit", "currency"]), Raw("1.00")))),
        ("unknown adjustment field", unknown),
        ("missing id", lambda a, r: (_drop(a, "id"), None)),
        ("missing date", lambda a, r: (_drop(a, "date"), None)),
        ("missing currency", lambda a, r: (_drop(a, "currency"), None)),
        ("missing lines", lambda a, r: (_drop(a, "lines"), None)),
        ("lines empty", lambda a, r: (_set(a, "lines", []), ".lines")),
        ("101 balanced lines", lambda a, r: (_set(a, "lines", [adjustment_line(r, minor(u, decimals(a)))
                                                               for u in [1] * 50 + [-1] * 50 + [0]]), ".lines")),
        ("lines as object", lambda a, r: (_set(a, "lines", a["lines"][0]), None)),
        ("the adjustment as an array", as_values),
        ("non-ISO currency", lambda a, r: (_set(a, "currency", r.choice(NOT_ISO_4217 + NOT_A_CURRENCY)), ".currency")),
        ("malformed currency", lambda a, r: (_set(a, "currency", r.choice(BAD_CURRENCY_TEXT)), ".currency")),
        ("currencyRate not positive", lambda a, r: (_set(a, "currencyRate", Raw(r.choice(["0", "-1", "-0.5"]))),
                                                    ".currencyRate")),
        ("currencyRate over 9 decimals", lambda a, r: (_set(a, "currencyRate", Raw("1.0000000001")), ".currencyRate")),
        ("currencyRate as string", lambda a, r: (_set(a, "currencyRate", "1.2"), None)),
        ("reference 1001 chars", lambda a, r: (_set(a, "reference", "R" * 1001), ".reference")),
        ("reference with a line break", lambda a, r: (_set(a, "reference", "FX\nMay"), ".reference")),
        ("description control chars", on_line(lambda l, r: _set(l, "description", "FX\u202eloss"))),
        ("bad date", lambda a, r: (_set(a, "date", r.choice(BAD_DATES)), ".date")),
        ("id as number", lambda a, r: (_set(a, "id", r.randint(1, 10 ** 12)), None)),
    ]


TRANSFER_MUTATIONS = _transfer_mutations()
ADJUSTMENT_MUTATIONS = _adjustment_mutations()
V1_TYPES = {"TransferIn": "transfers", "TransferOut": "transfers", "AdjustmentIn": "adjustments",
            "AdjustmentOut": "adjustments"}


def transfer_body(batch):
    """The batch as JSON, with an item replaced by `__array__` written as that array."""
    for key in ("transfers", "adjustments"):
        if isinstance(batch.get(key), list):
            batch[key] = [i["__array__"] if isinstance(i, dict) and "__array__" in i else i for i in batch[key]]
    return batch


def gen_transfers(ctx):
    if ctx.api == "v1":
        return _transfers_v1(ctx)
    pick = ctx.rng.choices(["transfer", "adjustment", "v1 type", "shape", "conflict", "valid"], [28, 32, 6, 6, 14, 14])[0]
    return {"transfer": _bad_item, "adjustment": _bad_item, "v1 type": _v1_type_current, "shape": _bad_shape,
            "conflict": _conflict, "valid": _valid_transfers}[pick](ctx, pick)


def _bad_item(ctx, pick):
    """One transfer or adjustment changed among valid siblings: the whole batch is refused."""
    rng = ctx.rng
    where, mutations = ("transfers", TRANSFER_MUTATIONS) if pick == "transfer" else ("adjustments", ADJUSTMENT_MUTATIONS)
    kind, mutate = rng.choice(mutations)
    batch = mixed_batch(rng, ctx.api)
    ids = batch_ids(batch)
    at = rng.randrange(len(batch[where]))
    what, field_name = mutate(batch[where][at], rng)
    named = {"status": 400, "field": f"{where}[{at}]{field_name}"} if field_name else None
    summary = f"batch of {len(ids)}, {where}[{at}]: {what}"
    return approval("transfers", f"{pick}: {kind}", summary, transfer_body(batch), new_id(rng), ids=ids, named=named)


def _bad_shape(ctx, pick):
    """The lists themselves: not arrays, or an id used twice across kinds."""
    rng = ctx.rng
    batch = mixed_batch(rng, ctx.api, expenses=(1, 3))
    ids = batch_ids(batch)
    kind = rng.choice(["transfers as object", "adjustments as object", "transfers as string", "adjustments as number",
                       "transfer id = a sibling's", "adjustment id = a sibling's", "transfer id = adjustment id"])
    if kind.endswith("as object"):
        key = kind.split()[0]
        batch[key] = batch[key][0]
        what = f"{key} is one object, not an array"
    elif kind.endswith(("as string", "as number")):
        key = kind.split()[0]
        batch[key] = "[]" if kind.endswith("string") else 1
        what = f"{key}={show(batch[key])}"
    else:
        target = "adjustments" if kind.startswith("adjustment") else "transfers"
        source = "adjustments" if kind.endswith("adjustment id") else "expenses"
        batch[target][-1]["id"] = rng.choice(batch[source])["id"]
        what = f"{target}[{len(batch[target]) - 1}].id is the id of one of its {source}"
    return approval("transfers", f"shape: {kind}", f"batch of {len(ids)}, {what}", batch, new_id(rng), ids=ids)


def _v1_type_current(ctx, pick):
    """A v1 transfer or adjustment type in expenses[]: a 400 naming the list to send it in."""
    rng = ctx.rng
    batch = mixed_batch(rng, ctx.api, transfers=(0, 1), adjustments=(0, 1), expenses=(1, 3))
    ids = batch_ids(batch)
    at = rng.randrange(len(batch["expenses"]))
    v1_type = rng.choice(list(V1_TYPES))
    batch["expenses"][at]["type"] = v1_type
    named = {"status": 400, "field": f"expenses[{at}].type", "words": V1_TYPES[v1_type]}
    return approval("transfers", f"v1 type {v1_type} in expenses", f"batch of {len(ids)}, expenses[{at}].type={v1_type}",
                    batch, new_id(rng), ids=ids, named=named)


def _valid_transfers(ctx, pick):
    """Valid transfers and adjustments at their edges, among valid siblings."""
    rng = ctx.rng
    edge = rng.choice(["plain", "only transfers", "only adjustments", "balanced as decimals, not as floats",
                       "4-decimal and 13-digit transfer", "exponent amounts", "JPY and KWD adjustments",
                       "CLF adjustment", "100-line adjustment", "tracking and invoiceTo on every line"])
    batch = mixed_batch(rng, ctx.api, transfers=(1, 2), expenses=(0, 1))
    if edge == "only transfers":
        batch = {"transfers": [valid_transfer(rng) for _ in range(rng.randint(1, 3))]}
    elif edge == "only adjustments":
        batch = {"adjustments": [valid_adjustment(rng) for _ in range(rng.randint(1, 4))]}
    elif edge == "balanced as decimals, not as floats":
        lines = rng.choice([["0.1", "0.2", "-0.3"], ["0.7", "0.1", "-0.8"], ["1.1", "2.2", "-3.3"],
                            ["0.3", "-0.1", "-0.2"], ["1234567890123.45", "0.01", "-1234567890123.46"]])
        batch["adjustments"][0].update(currency="GBP", lines=[adjustment_line(rng, Raw(x)) for x in lines])
    elif edge == "4-decimal and 13-digit transfer":
        batch["transfers"][0]["from"]["amount"] = Raw("9999999999999.9999")
        batch["transfers"][0]["to"]["amount"] = Raw(rng.choice(["0.0001", "1.2345", "9999999999999.99"]))
    elif edge == "exponent amounts":
        batch["transfers"][0]["from"]["amount"] = Raw(rng.choice(["1.5e2", "5E-1", "2.5e+1"]))
        batch["adjustments"][0].update(currency="GBP", lines=[adjustment_line(rng, Raw(x)) for x in ("1.37e1", "-13.7")])
    elif edge == "JPY and KWD adjustments":
        batch["adjustments"] = [valid_adjustment(rng, "JPY"), valid_adjustment(rng, "KWD")]
    elif edge == "CLF adjustment":
        batch["adjustments"][0] = valid_adjustment(rng, "CLF", 3)
    elif edge == "100-line adjustment":
        batch["adjustments"][0] = valid_adjustment(rng, lines=100)
    elif edge == "tracking and invoiceTo on every line":
        for line in batch["adjustments"][0]["lines"]:
            line["trackingRefs"] = [{"id": "SUP-1", "dataType": "suppliers"}, {"id": "CUS-2", "dataType": "customers"},
                                    {"id": "DEPARTMENT_3", "dataType": "trackingCategories"}]
            line["invoiceTo"] = {"id": "CUST-1", "type": "customer"}
    return valid_case(ctx, "transfers", f"valid: {edge}", f"valid batch of {len(batch_ids(batch))} with transfers/"
                      "adjustments", batch, new_id(rng))


def _conflict(ctx, pick):
    """A valid batch (the prelude), then the same ids with one transfer or adjustment changed,
    optionally moved and beside new siblings: a 409 naming the field, nothing of the new
    siblings stored, and Codat keeps the first version (see once-in-Codat)."""
    rng = ctx.rng
    company = new_id(rng)
    original = mixed_batch(rng, ctx.api, transfers=(1, 2), adjustments=(1, 2), expenses=(0, 1))
    first = dumps(original)
    changed = json_copy(original)
    which = rng.choice(["transfers", "adjustments", "cross-kind"])
    if which == "cross-kind":
        kind, field_name, where = _cross_kind(rng, changed)
    else:
        at = rng.randrange(len(changed[which]))
        mutations = TRANSFER_CONFLICTS if which == "transfers" else ADJUSTMENT_CONFLICTS
        kind, mutate = rng.choice(mutations)
        suffix = mutate(changed[which][at], rng)
        if len(changed[which]) > 1 and rng.random() < 0.5:  # the changed item moves: the field names its new place
            changed[which].append(changed[which].pop(at))
            at = len(changed[which]) - 1
        where, field_name = which, f"{which}[{at}]{suffix}"
    fresh = []
    if rng.random() < 0.6:  # a new sibling, which must not be stored either
        sibling_kind = rng.choice(["expenses", "transfers", "adjustments"])
        sibling = {"expenses": lambda: valid_expense(rng, ctx.api), "transfers": lambda: valid_transfer(rng),
                   "adjustments": lambda: valid_adjustment(rng)}[sibling_kind]()
        changed.setdefault(sibling_kind, []).insert(0, sibling)
        fresh.append(canonical(sibling["id"]))
        if sibling_kind == where:  # the changed item moved one place on
            prefix, _, rest = field_name.partition("]")
            field_name = f"{where}[{int(prefix.split('[')[1]) + 1}]{rest}"
    # A trailing * (or a cross-kind reuse): which field of the item comes first is the product's call.
    exact_field = not (kind.startswith("cross-kind") or field_name.endswith("*"))
    named = {"status": 409, ("field" if exact_field else "field_prefix"): field_name.rstrip("*")}
    case = approval("transfers", f"conflict: {kind}", f"conflicting replay ({kind}; {field_name}) of a valid batch of "
                    f"{len(batch_ids(original))}" + (" plus a new sibling" if fresh else ""), changed, company,
                    ids=fresh, named=named)
    case.prelude = lambda: approval_request(company, first)
    case.finals, case.finals_of_prelude = batch_finals(original), True
    return case


def json_copy(value):
    """A deep copy that keeps Raw numbers as they are."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def _other_amount(raw, rng, places=2):
    value = exact(raw) + Decimal(rng.randint(1, 999)).scaleb(-places)
    return text_of(value)


TRANSFER_CONFLICTS = [  # (kind, mutate(transfer, rng) -> the changed field's path within it)
    ("to.amount", lambda t, r: (t["to"].update(amount=_other_amount(t["to"]["amount"], r)), ".to.amount")[1]),
    ("from.amount", lambda t, r: (t["from"].update(amount=_other_amount(t["from"]["amount"], r)), ".from.amount")[1]),
    ("to.amount one ten-thousandth", lambda t, r: (t["to"].update(
        amount=text_of(exact(t["to"]["amount"]) + Decimal("0.0001"))), ".to.amount")[1]),
    ("to account", lambda t, r: (t["to"].update(accountRef={"id": next(
        a for a in ACCOUNTS if a not in (t["from"]["accountRef"]["id"], t["to"]["accountRef"]["id"]))}),
        ".to.accountRef.id")[1]),
    ("from and to swapped", lambda t, r: (t.update({"from": t["to"], "to": t["from"]}), ".from.accountRef.id")[1]),
    ("date", lambda t, r: (t.update(date="2023-12-31"), ".date")[1]),
    ("description", lambda t, r: (t.update(description=t.get("description", "")[:900] + " (edited)"),
                                  ".description")[1]),
    ("description dropped or added", lambda t, r: (t.pop("description") if "description" in t
                                                   else t.update(description="added"), ".description")[1]),
]


def _shift_unit(a, r):
    """One minor unit moved from one line to another: still balanced, another journal."""
    unit = Decimal(1).scaleb(-CURRENCY_DECIMALS[a["currency"]])
    a["lines"][0]["amount"] = text_of(exact(a["lines"][0]["amount"]) + unit)
    a["lines"][1]["amount"] = text_of(exact(a["lines"][1]["amount"]) - unit)
    return ".lines[0].amount"


ADJUSTMENT_CONFLICTS = [
    ("one minor unit moved between lines", _shift_unit),
    ("lines reversed", lambda a, r: (a["lines"].reverse(), ".lines[0]*")[1]
     if exact(a["lines"][0]["amount"]) != exact(a["lines"][-1]["amount"]) else _shift_unit(a, r)),
    ("a balanced pair added", lambda a, r: (a["lines"].extend(
        [adjustment_line(r, Raw("1")), adjustment_line(r, Raw("-1"))]), f".lines[{len(a['lines']) - 2}]")[1]),
    ("currency", lambda a, r: (a.update(currency="EUR" if a["currency"] != "EUR" else "GBP")
                               if CURRENCY_DECIMALS[a["currency"]] == 2 else a.update(currency="BHD" if a["currency"] == "KWD" else "KRW"), ".currency")[1]),
    ("currencyRate", lambda a, r: (a.update(currencyRate=Raw("1.5") if "currencyRate" not in a
                                            else text_of(exact(a["currencyRate"]) + Decimal("0.000000001"))),
                                   ".currencyRate")[1]),
    ("reference", lambda a, r: (a.update(reference=a.get("reference", "") + " (edited)"), ".reference")[1]),
    ("line account", lambda a, r: (a["lines"][-1].update(accountRef={"id": "changed-account"}),
                                   f".lines[{len(a['lines']) - 1}].accountRef.id")[1]),
    ("date", lambda a, r: (a.update(date="2023-12-31"), ".date")[1]),
]


def _cross_kind(rng, changed):
    """An id already approved as one kind, sent again as another."""
    kind = rng.choice(["transfer id as an adjustment", "adjustment id as a transfer"]
                      + (["expense id as a transfer"] if changed.get("expenses") else []))
    source, target = {"transfer id as an adjustment": ("transfers", "adjustments"),
                      "adjustment id as a transfer": ("adjustments", "transfers"),
                      "expense id as a transfer": ("expenses", "transfers")}[kind]
    taken = changed[source].pop(rng.randrange(len(changed[source])))
    if not changed[source]:
        changed.pop(source)
    item = valid_adjustment(rng) if target == "adjustments" else valid_transfer(rng)
    item["id"] = taken["id"]
    changed.setdefault(target, []).append(item)
    return f"cross-kind: {kind}", f"{target}[{len(changed[target]) - 1}]", target


def _transfers_v1(ctx):
    """v1 has no transfers or adjustments of their own (keys refused by name); its transfer and
    adjustment types are expenses with receipts, valid and uploaded."""
    rng = ctx.rng
    company = new_id(rng)
    batch = valid_batch(rng, ctx.api, rng.randint(1, 3))
    if rng.random() < 0.35:
        for at, expense in enumerate(batch["expenses"]):
            if at == 0 or rng.random() < 0.5:
                expense["type"] = rng.choice(list(V1_TYPES))
        types = ",".join(e["type"] for e in batch["expenses"])
        return valid_case(ctx, "transfers", "valid: v1 transfer and adjustment types", f"expenses of types {types}",
                          batch, company)
    ids = batch_ids(batch)
    key = rng.choice(["transfers", "adjustments"])
    value = rng.choice(["valid", "valid", "empty", "null", "invalid"])
    items = {"valid": lambda: [valid_transfer(rng) if key == "transfers" else valid_adjustment(rng)],
             "empty": lambda: [], "null": lambda: None,
             "invalid": lambda: [{"id": "x", "from": [], "lines": 1}]}[value]()
    batch[key] = items
    ids += batch_ids({key: items}) if items else []
    return approval("transfers", f"v1: {key} ({value})", f"batch of {len(ids)}, {key}={show(items)}", batch, company,
                    ids=ids, named={"status": 400, "field": key})


# ---- webhooks ----


def svix_signature(secret, message_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret, message_id, body, offset=0, prefix="webhook", timestamp=None):
    timestamp = int(time.time()) + offset if timestamp is None else timestamp
    return {"content-type": "application/json", f"{prefix}-id": message_id, f"{prefix}-timestamp": str(timestamp),
            f"{prefix}-signature": svix_signature(secret, message_id, timestamp, body)}


def sync_event(rng, company, sync_id, event_type="expenses.sync.successful"):
    return {"id": new_id(rng), "eventType": event_type, "generatedDate": "2026-12-01T00:00:00Z",
            "payload": {"referenceCompany": {"id": company, "name": "Hostile Ltd"}, "syncId": sync_id,
                        "transactions": []}}


def webhook(kind, summary, expect, make, prelude=None):
    return Case("webhook", kind, f"POST /webhooks/codat {summary}", expect, make, prelude=prelude)


def delivery(body, headers):
    return lambda: Request("POST", "webhook-receipt", "/webhooks/codat", body, headers())


def gen_webhook(ctx):
    rng = ctx.rng
    seed = ctx.known_sync()
    company, sync_id = (seed["company"], seed["syncId"]) if seed else (new_id(rng), new_id(rng))
    body = dumps(sync_event(rng, company, sync_id))
    message_id = f"msg_{uuid.UUID(int=rng.getrandbits(128)).hex}"
    pick = rng.choice(["forged", "forged", "forged", "replay", "replay", "tolerance", "tolerance", "array-shaped",
                       "non-canonical", "unknown-type", "malformed"])
    if pick == "replay" and seed is None:
        pick = "forged"
    return WEBHOOK_ATTACKS[pick](ctx, company, sync_id, body, message_id)


def _without(headers, name):
    return {k: v for k, v in headers.items() if k != name}


def _forged(ctx, company, sync_id, body, message_id):
    """Deliveries whose signature does not check out: each must be a 401, never processed."""
    rng, secret = ctx.rng, ctx.secret
    other_secret = "whsec_" + base64.b64encode(rng.randbytes(24)).decode()
    tampered = body.replace(b"successful", b"unsuccessful")
    signed = lambda: signed_headers(secret, message_id, body)  # noqa: E731
    variants = {
        "random signature": lambda: {**signed(), "webhook-signature": "v1," + base64.b64encode(rng.randbytes(32)).decode()},
        "wrong secret": lambda: signed_headers(other_secret, message_id, body),
        "tampered body": lambda: signed_headers(secret, message_id, tampered),  # signed over other bytes
        "signature for another id": lambda: {**signed_headers(secret, message_id + "x", body), "webhook-id": message_id},
        "v2 prefix": lambda: {**signed(), "webhook-signature": signed()["webhook-signature"].replace("v1,", "v2,")},
        "empty signature": lambda: {**signed(), "webhook-signature": ""},
        "no signature header": lambda: _without(signed(), "webhook-signature"),
        "no timestamp header": lambda: _without(signed(), "webhook-timestamp"),
        "no id header": lambda: _without(signed(), "webhook-id"),
        "no svix headers": lambda: {"content-type": "application/json"},
        "guessed legacy Authorization": lambda: {"content-type": "application/json",
                                                 "authorization": rng.choice(["Bearer x", "Basic Og==", secret])},
        "timestamp not a number": lambda: {**signed(), "webhook-timestamp": rng.choice(["1.7e9", "0x10", "", "now"])},
        "timestamp in milliseconds": lambda: signed_headers(secret, message_id, body, timestamp=int(time.time() * 1000)),
    }
    kind = rng.choice(list(variants))
    return webhook(f"forged: {kind}", f"{kind} (sync {sync_id})", HOSTILE, delivery(body, variants[kind]))


def _replay(ctx, company, sync_id, body, message_id):
    """A genuine delivery, then the same bytes and headers again with one header added."""
    rng, secret = ctx.rng, ctx.secret
    fresh = f"msg_{uuid.UUID(int=rng.getrandbits(128)).hex}"
    kind = rng.choice(["exact replay", "svix-signed + unsigned webhook-id", "webhook-signed + unsigned svix-id"])
    prefix = "svix" if kind.startswith("svix") else "webhook"
    captured = {}

    def genuine():
        captured["headers"] = signed_headers(secret, message_id, body, prefix=prefix)
        return Request("POST", "webhook-receipt", "/webhooks/codat", body, dict(captured["headers"]))

    def replayed():
        headers = dict(captured["headers"])
        if kind == "svix-signed + unsigned webhook-id":
            headers["webhook-id"] = fresh
        elif kind == "webhook-signed + unsigned svix-id":
            headers["svix-id"] = fresh
        return Request("POST", "webhook-receipt", "/webhooks/codat", body, headers)

    return webhook(f"replay: {kind}", f"{kind} of a genuine delivery for sync {sync_id}", REPLAY, replayed,
                   prelude=genuine)


def _tolerance(ctx, company, sync_id, body, message_id):
    rng, secret = ctx.rng, ctx.secret
    margin = rng.randint(20, 40)  # more than a request can queue in the local runtime
    direction = rng.choice([-1, 1])
    inside = rng.random() < 0.5
    offset = direction * (SVIX_TOLERANCE - margin if inside else SVIX_TOLERANCE + margin)
    when = f"{'past' if direction < 0 else 'future'} {'inside' if inside else 'outside'}"
    return webhook(f"timestamp {when}", f"timestamp now{offset:+d}s (tolerance {SVIX_TOLERANCE}s), sync {sync_id}",
                   VALID if inside else HOSTILE, delivery(body, lambda: signed_headers(secret, message_id, body, offset)))


def _array_shaped(ctx, company, sync_id, body, message_id):
    rng, secret = ctx.rng, ctx.secret
    event = sync_event(rng, company, sync_id)
    kind = rng.choice(["payload as array", "referenceCompany as array", "body as array", "transactions as object",
                       "payload as short array"])
    if kind == "payload as array":
        event["payload"] = [[company, "Hostile Ltd"], sync_id, []]
    elif kind == "referenceCompany as array":
        event["payload"]["referenceCompany"] = [company, "Hostile Ltd"]
    elif kind == "body as array":
        event = [event["id"], event["eventType"], event["generatedDate"], event["payload"]]
    elif kind == "transactions as object":
        event["payload"]["transactions"] = {"id": new_id(rng), "status": "Completed"}
    else:
        event["payload"] = [[company]]
    signed = dumps(event)
    shaped = event if kind == "body as array" else event["payload"]
    return webhook(f"signed, {kind}", f"{kind}: payload {show(shaped, 110)}", HOSTILE,
                   delivery(signed, lambda: signed_headers(secret, message_id, signed)))


def _non_canonical(ctx, company, sync_id, body, message_id):
    rng, secret = ctx.rng, ctx.secret
    spelling = rng.choice([k for k in NON_CANONICAL_IDS if k not in ("too-short", "too-long", "misplaced-hyphen")])
    which = rng.choice(["syncId", "referenceCompany.id"])
    event = sync_event(rng, company, sync_id)
    if which == "syncId":
        event["payload"]["syncId"] = NON_CANONICAL_IDS[spelling](sync_id)
    else:
        event["payload"]["referenceCompany"]["id"] = NON_CANONICAL_IDS[spelling](company)
    signed = dumps(event)
    return webhook(f"signed, {which} {spelling}", f"{which}={show(NON_CANONICAL_IDS[spelling](sync_id if which == 'syncId' else company))}",
                   HOSTILE, delivery(signed, lambda: signed_headers(secret, message_id, signed)))


def _unknown_type(ctx, company, sync_id, body, message_id):
    rng, secret = ctx.rng, ctx.secret
    event_type = rng.choice(["expenses.sync.other", "invoice.created", "EXPENSES.SYNC.SUCCESSFUL",
                             "expenses.sync.successful ", "expenses.sync." + uuid.UUID(int=rng.getrandbits(128)).hex])
    signed = dumps(sync_event(rng, company, sync_id, event_type))
    return webhook("signed, unknown event type", f"eventType={event_type!r} for sync {sync_id}", IGNORED,
                   delivery(signed, lambda: signed_headers(secret, message_id, signed)))


def _malformed(ctx, company, sync_id, body, message_id):
    rng, secret = ctx.rng, ctx.secret
    kind = rng.choice(["invalid JSON", "eventType missing", "eventType as number", "trailing data", "empty body"])
    event = sync_event(rng, company, sync_id)
    if kind == "invalid JSON":
        signed = dumps(event)[:-3]
    elif kind == "eventType missing":
        event.pop("eventType")
        signed = dumps(event)
    elif kind == "eventType as number":
        event["eventType"] = 1
        signed = dumps(event)
    elif kind == "trailing data":
        signed = dumps(event) + b" {}"
    else:
        signed = b""
    return webhook(f"signed, {kind}", f"{kind} (sync {sync_id})", HOSTILE,
                   delivery(signed, lambda: signed_headers(secret, message_id, signed)))


WEBHOOK_ATTACKS = {"forged": _forged, "replay": _replay, "tolerance": _tolerance, "array-shaped": _array_shaped,
                   "non-canonical": _non_canonical, "unknown-type": _unknown_type, "malformed": _malformed}


# ---- status route ----


def gen_status(ctx):
    rng = ctx.rng
    seed = ctx.seed()
    company, expense = (seed["company"], rng.choice(seed["ids"])) if seed else (new_id(rng), new_id(rng))
    others = [s["company"] for s in ctx.seeds if s["company"] != company] or [new_id(rng)]
    other = rng.choice(others)
    choices = [(f"company id {k}", f"/companies/{in_path(f(company))}/expenses/{expense}", HOSTILE)
               for k, f in NON_CANONICAL_IDS.items()]
    choices += [(f"expense id {k}", f"/companies/{company}/expenses/{in_path(f(expense))}", HOSTILE)
                for k, f in NON_CANONICAL_IDS.items()]
    choices += [(kind, path, HOSTILE) for kind, path, _ in path_attacks(company, other, f"/expenses/{expense}")]
    choices += [("another company's expense", f"/companies/{other}/expenses/{expense}", HOSTILE),
                ("another company's expense via dot-dot", f"/companies/{company}/../{other}/expenses/{expense}",
                 HOSTILE),
                ("wrong method", None, HOSTILE),
                ("own expense (valid read)", f"/companies/{company}/expenses/{expense}", VALID)]
    kind, path, expect = rng.choice(choices)
    method = "GET"
    if path is None:
        method, path = rng.choice(["POST", "DELETE", "PUT"]), f"/companies/{company}/expenses/{expense}"
    summary = f"{method} {path}" + ("" if seed else " (no seeded expense: ids are random)")
    return Case("status", kind, summary, expect, Request(method, "expense-status", path))


CATEGORIES = {  # name: (weight, generator)
    "valid": (8, gen_valid),
    "replay": (3, gen_replay),
    "corrupt-field": (18, gen_corrupt_field),
    "framing": (6, gen_framing),
    "framing-utf8": (1, gen_invalid_utf8),
    "bad-id": (5, gen_bad_id),
    "bad-path": (6, gen_bad_path),
    "money": (10, gen_money),
    "dates": (5, gen_dates),
    "strings": (5, gen_strings),
    "receipts": (9, gen_receipts),
    "oversize": (1, gen_oversize),
    "transfers": (10, gen_transfers),
    "webhook": (15, gen_webhook),
    "status": (8, gen_status),
}
APPROVAL_CATEGORIES = {"valid", "replay", "corrupt-field", "framing", "bad-id", "bad-path", "money", "dates",
                       "strings", "receipts", "oversize", "transfers"}
MAX_OVERSIZE = 12  # each is 6-12 MB through the local runtime


def generate(ctx, count):
    names = list(CATEGORIES)
    weights = [CATEGORIES[n][0] for n in names]
    cases, oversize = [], 0
    while len(cases) < count:
        name = ctx.rng.choices(names, weights)[0]
        if name == "oversize":
            if oversize >= MAX_OVERSIZE:
                continue
            oversize += 1
        case = CATEGORIES[name][1](ctx)
        case.number = len(cases) + 1
        cases.append(case)
    return cases


# ---- the stack ----


@dataclass
class Stack:
    functions: str  # .../lambda-url
    sandbox: str
    moto: str
    timeout: float

    def call(self, request, timeout=None):
        return send(self.functions, request, timeout or self.timeout)

    def status_of(self, company, expense, timeout=None):
        answer = self.call(Request("GET", "expense-status", f"/companies/{company}/expenses/{expense}"), timeout)
        return answer.status, answer.json() or {}

    def aws(self, service):
        return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                     region_name=devenv.REGION).client(service, endpoint_url=self.moto)

    def sandbox_calls(self):
        with urllib.request.urlopen(f"{self.sandbox}/_sandbox/calls", timeout=120) as response:
            return json.loads(response.read())

    def sandbox_stats(self):
        with urllib.request.urlopen(f"{self.sandbox}/_sandbox/stats", timeout=120) as response:
            return json.loads(response.read())


def log(message):
    print(f"[hostile {time.strftime('%H:%M:%S')}] {message}", flush=True)


def seed_phase(stack, rng, api, count=3):
    """Valid approvals made before the run: the status and webhook attacks aim at their ids and syncs.
    The first request to each function also waits out `cargo lambda watch` starting it."""
    for function in ("approval-intake", "expense-status", "webhook-receipt"):
        stack.call(Request("GET", function, "/warm-up"), timeout=600)
    seeds = []
    for _ in range(count):
        company, batch = new_id(rng), valid_batch(rng, api, 2)
        for kind in KINDS[1:]:  # expenses only: the status attacks aim at uploaded receipts
            batch.pop(kind, None)
        answer = stack.call(Request("POST", "approval-intake", f"/companies/{company}/expenses", dumps(batch),
                                    {"content-type": "application/json"}), timeout=600)
        seeds.append({"company": company, "ids": batch_ids(batch), "answer": answer, "syncId": None})
        log(f"seed approval for company {company}: {answer.brief(90)}")
    deadline = time.time() + 120
    while time.time() < deadline and any(s["syncId"] is None for s in seeds):
        for seed in seeds:
            if seed["syncId"] is None:
                status, view = stack.status_of(seed["company"], seed["ids"][0], timeout=60)
                seed["syncId"] = view.get("syncId") if status == 200 else None
        time.sleep(1)
    log(f"seeded syncs: {[s['syncId'] for s in seeds]}")
    return seeds


def moto_memory():
    """The resident memory of the moto server devenv started (it grows with the table and its
    stream), for the progress lines; empty against a stack started elsewhere."""
    for name, process in getattr(devenv, "_children", []):
        try:
            status = Path(f"/proc/{process.pid}/status").read_text() if name == "moto" else ""
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return f"; moto RSS {int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return ""


def run_cases(stack, cases, workers):
    done, recent = Counter(), []
    lock = threading.Lock()
    started = time.monotonic()

    def run(case):
        if case.prelude is not None:
            case.prelude_answer = stack.call(case.prelude())
        request = case.request() if callable(case.request) else case.request
        case.size = len(request.body)
        case.answer = stack.call(request)
        case.request = None  # bodies can be megabytes: keep only the summary
        with lock:
            done["n"] += 1
            recent.append(case.answer.seconds)
            if done["n"] % 100 == 0:
                log(f"{done['n']}/{len(cases)} answered ({time.monotonic() - started:.0f}s; "
                    f"median of the last 100 {statistics.median(recent[-100:]):.2f}s{moto_memory()})")

    pool = ThreadPoolExecutor(workers)
    try:
        for future in [pool.submit(run, case) for case in cases]:
            future.result()
    finally:  # on Ctrl-C or SIGTERM, start nothing new
        pool.shutdown(wait=False, cancel_futures=True)
    return time.monotonic() - started


# ---- invariants ----


class Violations:
    def __init__(self):
        self.found = defaultdict(list)  # invariant -> [(case, detail)]

    def add(self, invariant, case, detail):
        self.found[invariant].append((case, detail))

    def total(self):
        return sum(len(v) for v in self.found.values())


INVARIANTS = ["no-5xx", "answered", "hostile-refused", "valid-accepted", "replay-ignored", "refusal-named",
              "nothing-left", "once-in-Codat", "valid-final"]


def deferred(case, answer=None):
    """A valid approval (or a conflict case's valid prelude) the stack legitimately postponed:
    502/503 with a note."""
    answer = answer or case.answer
    valid = case.expect == VALID or (answer is case.prelude_answer and case.finals_of_prelude)
    return valid and case.is_approval() and answer.status in (502, 503) and (answer.json() or {}).get("note")


def accepted(case, answer):
    return answer is not None and answer.status is not None and (200 <= answer.status < 300 or deferred(case, answer))


def emulator_refused(case, answer):
    """A body that is not UTF-8, answered by cargo lambda itself: it cannot put such bytes into
    a Lambda event, so the function never saw the request. Not the functions' answer, so not a
    violation of theirs; counted and printed on its own."""
    return case.kind == "invalid UTF-8" and answer.status == 500 and b"httpstatuses.com" in answer.body


EMULATOR_REFUSED = []


def check_answers(cases, violations):
    deferrals = []
    for case in cases:
        for answer, what in ((case.prelude_answer, "prelude"), (case.answer, "request")):
            if answer is None:
                continue
            if answer.status is None:
                violations.add("answered", case, f"{what}: {answer.brief()}")
            elif answer.status >= 500:
                if deferred(case, answer):
                    deferrals.append(case)
                elif what == "request" and emulator_refused(case, answer):
                    EMULATOR_REFUSED.append(case)
                else:
                    violations.add("no-5xx", case, f"{what}: {answer.brief()}")
        prelude = case.prelude_answer
        if prelude is not None and prelude.status is not None and 300 <= prelude.status < 500:
            what = "valid prelude approval" if case.is_approval() else "genuine delivery"
            violations.add("valid-accepted", case, f"{what} refused: {prelude.brief()}")
        status = case.answer.status
        if status is None or status >= 500:
            continue
        ok = 200 <= status < 300
        body = case.answer.json() or {}
        if case.expect == HOSTILE and ok:
            violations.add("hostile-refused", case, f"accepted bad input: {case.answer.brief()}")
        elif case.expect == VALID and not ok:
            violations.add("valid-accepted", case, f"refused valid input: {case.answer.brief()}")
        elif case.expect == IGNORED and not (ok and "ignored" in body):
            violations.add("valid-accepted" if not ok else "hostile-refused", case,
                           f"unknown event type not simply acknowledged: {case.answer.brief()}")
        elif case.expect == REPLAY and ok and body.get("duplicate") is not True:
            violations.add("replay-ignored", case, f"replay processed as new: {case.answer.brief()}")
        problem = misnamed(case.named, status, body) if case.named and not ok else None
        if problem:
            violations.add("refusal-named", case, f"{problem}: {case.answer.brief(300)}")
    return deferrals


def misnamed(named, status, body):
    """How a refusal falls short of what its case expects, or None."""
    if status != named["status"]:
        return f"expected {named['status']}"
    got = body.get("field") if isinstance(body, dict) else None
    if "field" in named and got != named["field"]:
        return f"expected field {named['field']!r}, got {got!r}"
    if "field_prefix" in named and not (isinstance(got, str) and got.startswith(named["field_prefix"])):
        return f"expected a field under {named['field_prefix']!r}, got {got!r}"
    if "words" in named and named["words"] not in json.dumps(body):
        return f"expected the answer to name {named['words']!r}"
    return None


def refused_approvals(cases):
    """Approvals answered non-2xx: none of their expense ids may exist anywhere."""
    return [c for c in cases if c.is_approval() and c.answer.status is not None and not 200 <= c.answer.status < 300
            and not deferred(c) and c.expense_ids]


def check_left_behind(stack, cases, violations, workers, calls):
    refused = refused_approvals(cases)
    suspects = {}  # expense id -> case
    for case in refused:
        for expense_id in case.expense_ids:
            suspects[expense_id] = case
    log(f"checking that {len(refused)} refused approvals ({len(suspects)} expense ids) left nothing behind")
    found = defaultdict(list)  # expense id -> [where]

    readable = [(case, company, expense_id) for case in refused for company in case.companies
                for expense_id in case.expense_ids]
    with ThreadPoolExecutor(workers) as pool:
        for (case, company, expense_id), (status, view) in zip(
                readable, pool.map(lambda r: stack.status_of(r[1], r[2], timeout=60), readable)):
            if status == 200:
                found[expense_id].append(f"status route {company}: {view.get('status')}")

    table = stack.aws("dynamodb")
    for page in table.get_paginator("scan").paginate(TableName=devenv.TABLE):
        for item in page["Items"]:
            sk = item.get("sk", {}).get("S", "")
            expense_id = sk.removeprefix("EXPENSE#")
            if sk.startswith("EXPENSE#") and expense_id in suspects:
                found[expense_id].append(f"DynamoDB {item['pk']['S']} status={item.get('status', {}).get('S')}")

    s3 = stack.aws("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=devenv.BUCKET, Prefix="receipts/"):
        for obj in page.get("Contents", []):
            expense_id = obj["Key"].rsplit("/", 1)[-1]
            if expense_id in suspects:
                found[expense_id].append(f"S3 {obj['Key']} ({obj['Size']} bytes)")

    for call in calls:
        for expense_id in created_ids(call):
            if expense_id in suspects:
                found[expense_id].append(f"Codat {call['method']} {call['path'].rsplit('/', 1)[-1]} -> {call['status']}")

    for expense_id, places in found.items():
        case = suspects[expense_id]
        violations.add("nothing-left", case, f"answered {case.answer.status}, yet {expense_id}: {'; '.join(places)}")
    return len(refused)


CREATES = ("expense-transactions", "adjustment-transactions")  # POSTed in batches (reimbursable-... too)


def created_ids(call):
    """The transaction ids a create call in the sandbox's log carried (both APIs, every kind):
    POSTs of expense, reimbursable and adjustment transactions carry them in their bodies, a
    transfer's PUT in its path."""
    path = call.get("path", "")
    if call.get("method") == "PUT" and "/transfer-transactions/" in path:
        transaction = path.rsplit("/", 1)[-1]
        return [canonical(transaction) or transaction]
    if call.get("method") != "POST" or not path.endswith(CREATES):
        return []
    body = call.get("body")
    items = body.get("items") if isinstance(body, dict) else body
    return [canonical(i["id"]) or i["id"] for i in items or [] if isinstance(i, dict) and isinstance(i.get("id"), str)]


def owners(cases):
    """id -> the case that approved it (valid approvals and conflict preludes)."""
    found = {}
    for case in cases:
        for expense_id in case.finals:
            found.setdefault(expense_id, case)
    return found


def check_once_in_codat(stack, cases, violations, calls):
    """No transfer or adjustment reached Codat twice. The sandbox counts a transfer's PUTs per
    id (a second is a resend or an update, each a new sync of it); and no transfer or adjustment
    id may be in two create calls of the log, whatever their answers (the sandbox refuses a
    reused adjustment id, so a second attempt shows only there). No faults are injected here,
    so no answer is lost and nothing needs a second attempt."""
    owner = owners(cases)
    orphan = Case("transfers", "unknown", "an id no case approved", VALID, None)
    for company, stats in stack.sandbox_stats().get("companies", {}).items():
        for transfer_id, writes in stats.get("transfers", {}).items():
            if writes.get("resends") or writes.get("updates") or writes.get("creates", 0) > 1:
                violations.add("once-in-Codat", owner.get(transfer_id, orphan),
                               f"transfer {transfer_id} of company {company} was PUT more than once: {writes}")
    creates = defaultdict(list)  # id -> [(seq, status)]
    for call in calls:
        path = call.get("path", "")
        if path.endswith("adjustment-transactions") or "/transfer-transactions/" in path:
            for transaction_id in created_ids(call):
                creates[transaction_id].append((call.get("seq"), call.get("status")))
    for transaction_id, seen in creates.items():
        if len(seen) > 1:
            violations.add("once-in-Codat", owner.get(transaction_id, orphan),
                           f"{transaction_id} is in {len(seen)} create calls (seq, status): {seen}")
    return len(creates)


def check_final(stack, cases, seeds, violations, settle, workers):
    """Every accepted valid approval (the seeds, and conflict cases' preludes, too) reaches its
    terminal status: `uploaded` for expenses, `recordedWithoutAttachment` for transfers and
    adjustments."""
    pending, expected = {}, {}  # (company, id) -> case or None (seed); (company, id) -> status
    for case in cases:
        answer = case.prelude_answer if case.finals_of_prelude else case.answer
        if case.is_approval() and case.finals and accepted(case, answer):
            for expense_id, final in case.finals.items():
                pending.setdefault((case.companies[0], expense_id), case)
                expected.setdefault((case.companies[0], expense_id), final)
    for seed in seeds:
        for expense_id in seed["ids"]:
            pending.setdefault((seed["company"], expense_id), None)
            expected.setdefault((seed["company"], expense_id), "uploaded")
    log(f"waiting up to {settle}s for {len(pending)} valid items to reach their final status "
        f"({', '.join(f'{k} {v}' for k, v in sorted(Counter(expected.values()).items()))})")
    last, stopped = {}, {}
    deadline = time.time() + settle
    with ThreadPoolExecutor(workers) as pool:
        while pending and time.time() < deadline:
            keys = list(pending)
            for key, (status, view) in zip(keys, pool.map(lambda k: stack.status_of(*k, timeout=60), keys)):
                last[key] = (status, view.get("status"), view.get("failure"))
                if view.get("status") == expected[key]:
                    pending.pop(key)
                elif view.get("status") in FINAL:  # stopped at another final status: no use waiting
                    stopped[key] = pending.pop(key)
            if pending:
                time.sleep(3)
    for (company, expense_id), case in {**pending, **stopped}.items():
        status, state, failure = last.get((company, expense_id), (None, None, None))
        subject = case or Case("seed", "seed approval", f"seed approval for company {company}", VALID, None)
        violations.add("valid-final", subject,
                       f"{expense_id} is {state or f'unreadable ({status})'} after {settle}s, not "
                       f"{expected[(company, expense_id)]}" + (f": {failure}" if failure else ""))
    return len(last)


# ---- report ----


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else 0.0


def report(cases, violations, deferrals, seed, args, seconds):
    print()
    answers = [a for c in cases for a in (c.prelude_answer, c.answer) if a is not None]
    per_category = defaultdict(Counter)
    for case in cases:
        for answer in (case.prelude_answer, case.answer):
            if answer is not None:
                bucket = "none" if answer.status is None else f"{answer.status // 100}xx"
                per_category[case.category][bucket] += 1
    seconds_by_category = defaultdict(list)
    for case in cases:
        seconds_by_category[case.category] += [a.seconds for a in (case.prelude_answer, case.answer) if a]
    print(f"{'category':15} {'requests':>8} {'2xx':>6} {'4xx':>6} {'5xx':>6} {'none':>6} {'p50 ms':>8} {'max ms':>8}")
    for name in sorted(per_category):
        counts, spent = per_category[name], seconds_by_category[name]
        print(f"{name:15} {sum(counts.values()):8} {counts['2xx']:6} {counts['4xx']:6} {counts['5xx']:6} "
              f"{counts['none']:6} {percentile(spent, 0.5) * 1000:8.0f} {max(spent) * 1000:8.0f}")
    print(f"{'total':15} {len(answers):8}   in {seconds:.0f}s with {args.workers} workers")
    codes = Counter("none" if a.status is None else a.status for a in answers)
    print("answers by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=lambda kv: str(kv[0]))))
    latencies = [a.seconds for a in answers]
    print(f"latency: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")
    slowest = sorted(((a.seconds, c) for c in cases for a in (c.prelude_answer, c.answer) if a), key=lambda x: -x[0])
    print("slowest: " + "; ".join(f"#{c.number} {c.category}/{c.kind} {t:.1f}s ({c.size} bytes)" for t, c in slowest[:5]))
    print(f"deferred valid approvals (502/503 with a note, not violations): {len(deferrals)}")
    print(f"non-UTF-8 bodies answered 500 by cargo lambda before any function ran (not violations): "
          f"{len(EMULATOR_REFUSED)}")
    for case in deferrals:
        print(f"  {case.line()}\n    -> {case.answer.brief()}")
    print("violations per invariant: " + ", ".join(f"{name}: {len(violations.found.get(name, []))}"
                                                  for name in INVARIANTS))
    print(f"after the checks{moto_memory() or ': moto not started here'}")
    print(f"seed {seed}, requests {args.requests}, workers {args.workers}, CODAT_API={args.codat_api}")


def print_violations(violations):
    for invariant in INVARIANTS:
        found = violations.found.get(invariant, [])
        if not found:
            continue
        print(f"\n== {invariant}: {len(found)} violation(s)")
        kinds = Counter(f"{case.category}/{case.kind}" for case, _ in found)
        print("   by kind: " + "; ".join(f"{k} x{n}" for k, n in kinds.most_common()))
        for case, detail in found:
            print(f"  {case.line()}\n    -> {detail}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1500, help="cases to send (default 1500)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent requests (default 8)")
    parser.add_argument("--codat-api", choices=["expenses", "v1"], default="expenses",
                        help="the API the stack's approval intake uses (sets CODAT_API; default expenses)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds any answer may take (default 30)")
    parser.add_argument("--settle", type=float, default=300.0,
                        help="seconds valid approvals may take to reach their final status after the run "
                        "(default 300)")
    parser.add_argument("--functions-url", help="a running stack's function URL base, e.g. "
                        "http://127.0.0.1:9000/lambda-url (then nothing is started)")
    parser.add_argument("--sandbox-url", default=devenv.SANDBOX_URL, help="its Codat sandbox")
    parser.add_argument("--moto-url", default=devenv.MOTO_URL, help="its moto server")
    parser.add_argument("--webhook-secret", default=devenv.WEBHOOK_SECRET, help="its whsec_ signing secret")
    return parser.parse_args()


def main():
    args = parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 32)
    log(f"seed {seed}: rerun with --seed {seed} --requests {args.requests} --codat-api {args.codat_api}")
    the_pump = None
    if args.functions_url:
        functions = args.functions_url
    else:
        atexit.register(devenv.stop_all)  # also when up() fails half-way
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        os.environ["CODAT_API"] = args.codat_api
        _, the_pump = devenv.up(sweep_seconds=10, sweep_poll_after=30, sync_delay_ms=300, codat_api=args.codat_api)
        functions = devenv.FUNCTION_URL
    stack = Stack(functions, args.sandbox_url, args.moto_url, args.timeout)
    try:
        seeds = seed_phase(stack, random.Random(seed ^ 0x5EED), args.codat_api)
        ctx = Context(random.Random(seed), args.codat_api, seeds, args.webhook_secret)
        cases = generate(ctx, args.requests)
        log(f"sending {len(cases)} cases from {args.workers} workers: "
            + ", ".join(f"{k} {v}" for k, v in sorted(Counter(c.category for c in cases).items())))
        seconds = run_cases(stack, cases, args.workers)
        violations = Violations()
        deferrals = check_answers(cases, violations)
        check_final(stack, cases, seeds, violations, args.settle, args.workers)
        calls = stack.sandbox_calls()
        check_left_behind(stack, cases, violations, args.workers, calls)
        log(f"checked {check_once_in_codat(stack, cases, violations, calls)} transfer and adjustment ids in Codat")
        print_violations(violations)
        report(cases, violations, deferrals, seed, args, seconds)
        return 1 if violations.total() else 0
    finally:
        if the_pump is not None:
            the_pump.close()
            devenv.stop_all()


if __name__ == "__main__":
    sys.exit(main())
