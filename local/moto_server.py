"""moto server, applying one request at a time.

moto's TransactWriteItems copies each table it touches and, when the transaction is
cancelled, restores that copy: writes other threads made meanwhile are silently lost. DynamoDB
has no such effect, and tests run concurrently (some cancel transactions on purpose), so the
emulator runs each request under one lock. Connections stay threaded and keep-alive.

The restored copy also brings a copy of the table's stream shard, while every open shard
iterator (the stream pump's) still reads the old one: after one cancelled transaction the
stream would go silent for good. So the live shard is kept, less the records the cancelled
transaction wrote (nobody read them: requests run one at a time).

    python local/moto_server.py HOST PORT
"""

import os
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

_transact_write_items = DynamoDBBackend.transact_write_items


def transact_write_items_keeping_streams(self, transact_items):
    shards = {name: (table.stream_shard, len(table.stream_shard.items))
              for name, table in self.tables.items() if table.stream_shard is not None}
    try:
        return _transact_write_items(self, transact_items)
    finally:
        for name, (shard, length) in shards.items():
            table = self.tables.get(name)
            if table is not None and table.stream_shard is not shard:
                del shard.items[length:]
                table.stream_shard = shard


DynamoDBBackend.transact_write_items = transact_write_items_keeping_streams


class OneAtATime:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Produce the whole response under the lock: moto builds it while it acts.
            return list(self.app(environ, start_response))


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, OneAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
