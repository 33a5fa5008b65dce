"""moto server, applying one request at a time.

moto's TransactWriteItems copies each table it touches and, when the transaction is
cancelled, restores that copy: writes other threads made meanwhile are silently lost. DynamoDB
has no such effect, and tests run concurrently (some cancel transactions on purpose), so the
emulator runs each request under one lock. Connections stay threaded and keep-alive.

    python local/moto_server.py HOST PORT
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


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
