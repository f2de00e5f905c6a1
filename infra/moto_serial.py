"""Serve moto one request at a time (used for the local DynamoDB).

moto's DynamoDB transactions are not isolated under its default threaded server: it checks each
item's condition and applies it in turn without a lock, and a cancelled transaction restores a
copy of the whole table taken at its start. Two concurrent transactions on one item can then both
"win", and a rollback can undo another request's committed write. Real DynamoDB serialises writes
per item and applies a transaction atomically; serving one request at a time gives the local
stack at least that guarantee. SQS keeps its own threaded moto (long polling needs concurrency).

usage: moto_serial.py HOST PORT
"""

import os
import sys

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
