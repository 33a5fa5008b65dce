"""moto server, applying one request at a time, with transactions that cost what they touch.

moto's TransactWriteItems deep-copies each table it touches, on every call, to restore it if
the transaction is cancelled. That makes every transaction cost as much as the whole table
(an approval took 40 s once the table held a few thousand expenses), and a restore silently
drops writes other threads made meanwhile. Here, requests run one at a time (so nothing else
writes during a transaction), and a transaction saves only the items it touches: a cancelled
one puts exactly those back and drops the stream records it wrote (nobody read them). The
table object, and with it the live stream shard every open iterator reads, never changes.

    python local/moto_server.py HOST PORT
"""

import copy
import datetime
import json
import os
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.core.model_instances import reset_model_data
from moto.core.responses import ActionResult
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

_transact_write_items = DynamoDBBackend.transact_write_items


class _NoTableCopy:
    """moto's `copy` module for the length of a transaction: a table is "copied" as a marker
    naming it, which is what moto puts back on a rollback; every other copy is a real one."""

    def __init__(self):
        self.active = False

    def deepcopy(self, value, *args):
        if self.active and isinstance(value, Table):
            return _RolledBack(value)
        return copy.deepcopy(value, *args)

    def __getattr__(self, name):
        return getattr(copy, name)


class _RolledBack:
    def __init__(self, table):
        self.table = table


_copies = _NoTableCopy()
dynamodb_models.copy = _copies


def _touched(backend, transact_items):
    """(table, hash key, range key, a copy of the item as it is now or None) per item."""
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName"))
        keys = op.get("Item") or op.get("Key")
        if table is None or not keys:
            continue
        try:
            hash_key, range_key = backend.get_keys_value(table, keys)
            current = table.get_item(hash_key, range_key)
        except Exception:  # moto reports malformed keys itself, with its own error
            continue
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    return saved


def _put_back(table, hash_key, range_key, item):
    """Restores one item without a stream record (the cancelled transaction's are dropped)."""
    if range_key is not None:
        if item is None:
            table.items[hash_key].pop(range_key, None)
            if not table.items[hash_key]:
                del table.items[hash_key]
        else:
            table.items[hash_key][range_key] = item
    elif item is None:
        table.items.pop(hash_key, None)
    else:
        table.items[hash_key] = item


def transact_write_items_undoing_touched_items(self, transact_items):
    saved = _touched(self, transact_items)
    shards = {id(t): (t.stream_shard, len(t.stream_shard.items)) for t, *_ in saved if t.stream_shard is not None}
    _copies.active = True
    try:
        return _transact_write_items(self, transact_items)
    finally:
        _copies.active = False
        rolled_back = [name for name, table in self.tables.items() if isinstance(table, _RolledBack)]
        for name in rolled_back:
            self.tables[name] = self.tables[name].table
        if rolled_back:
            for table, hash_key, range_key, item in reversed(saved):
                _put_back(table, hash_key, range_key, item)
            for shard, length in shards.values():
                del shard.items[length:]


DynamoDBBackend.transact_write_items = transact_write_items_undoing_touched_items


_execute_result = ActionResult.execute_result
_PLAIN_JSON_SERVICES = {"dynamodb", "dynamodbstreams"}


def _plain(value):
    """What moto's serializer makes of the values DynamoDB's handlers leave in a result."""
    if isinstance(value, DynamoType):
        return value.to_json()  # {"S": ...}; nested values come back here
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(type(value).__name__)


def execute_result_as_plain_json(self, context):
    """DynamoDB and its streams answer plain JSON, which is what their handlers build: dump it
    as it is. moto's generic serializer walks every attribute of every item against the
    service model, which took most of the server's time once responses held many items (a
    stream batch, a query). Anything that is not plain data takes the serializer."""
    if type(self) is ActionResult and context.service_model.service_name in _PLAIN_JSON_SERVICES:
        try:
            body = json.dumps(self.result, default=_plain)
        except TypeError:
            return _execute_result(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
    return _execute_result(self, context)


ActionResult.execute_result = execute_result_as_plain_json


class OneAtATime:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            try:
                # Produce the whole response under the lock: moto builds it while it acts.
                return list(self.app(environ, start_response))
            finally:
                # moto keeps every model instance it ever made for its dashboard (nothing
                # here reads it), so memory grew without bound in a long run.
                reset_model_data()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, OneAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
