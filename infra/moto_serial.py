"""Serve moto one request at a time (used for the local DynamoDB).

moto's DynamoDB transactions are not isolated under its default threaded server: it checks each
item's condition and applies it in turn without a lock, and a cancelled transaction restores a
copy of the whole table taken at its start. Two concurrent transactions on one item can then both
"win", and a rollback can undo another request's committed write. Real DynamoDB serialises writes
per item and applies a transaction atomically; serving one request at a time gives the local
stack at least that guarantee. SQS keeps its own threaded moto (long polling needs concurrency).

It also allows 100 items in a TransactGetItems, as DynamoDB does (moto checks the old 25), and
makes a transaction's rollback copy cost what the transaction touches: moto deep-copies
every table a transaction names before it starts (to restore on cancel), which is O(table) per
transaction and made a few thousand orders take minutes. Here the copy is the table's item index
one level deep plus deep copies of only the items the transaction names (Put items, Update /
Delete / ConditionCheck keys); restoring it on cancel gives the same result, since nothing else
can change while one request is served at a time.

Real DynamoDB's transaction conflicts, optionally (FLASHSTOCK_DYNAMODB_CONFLICTS=1): every
request then spends FLASHSTOCK_DYNAMODB_LATENCY_MS (default 10) in flight before moto serves it,
other requests overlapping it meanwhile, and while it is in flight the items it writes are busy
(not while it then waits for moto's one thread: DynamoDB has no such queue).
A TransactWriteItems that names a busy item is cancelled with TransactionConflict for that item
(TransactionCanceledException, as DynamoDB answers), and a PutItem, UpdateItem or DeleteItem of
an item a transaction holds is refused with TransactionConflictException. GET /flashstock/conflicts
answers the counts. moto itself still serves one request at a time.

usage: moto_serial.py HOST PORT
"""

import copy
import io
import json
import os
import sys
import threading
import time

import moto_untracked  # noqa: F401  (first: stops moto's instance tracking, see its header)
from werkzeug.serving import run_simple
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

_deepcopy = copy.deepcopy

# DynamoDB takes up to 100 items in a TransactGetItems, as in a TransactWriteItems; moto still
# checks the old 25 for reads (a collection's snapshot reads its header's buckets: up to 64).
dynamodb_responses.TRANSACTION_MAX_ITEMS = 100


class _CopyTouchedOnly:
    """Stands in for the `copy` module inside one transact_write_items call."""

    def __init__(self, transact_items):
        self.keys = {}
        for entry in transact_items:
            for op in entry.values():
                key = op.get("Key") or op.get("Item")
                if op.get("TableName") and key:
                    self.keys.setdefault(op["TableName"], []).append(key)

    def deepcopy(self, obj, memo=None):
        if not isinstance(obj, Table):
            return _deepcopy(obj, memo)
        new = copy.copy(obj)
        new.items = copy.copy(obj.items)
        for key in self.keys.get(obj.name, []):
            if obj.hash_key_attr in key:
                hash_value = DynamoType(key[obj.hash_key_attr])
                if hash_value in obj.items:
                    new.items[hash_value] = _deepcopy(obj.items[hash_value])
        return new

    def __getattr__(self, name):
        return getattr(copy, name)


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items_copying_touched(self, transact_items):
    dynamodb_models.copy = _CopyTouchedOnly(transact_items)
    try:
        return _transact_write_items(self, transact_items)
    finally:
        dynamodb_models.copy = copy


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_copying_touched

_WRITES = ("PutItem", "UpdateItem", "DeleteItem")


def _item_keys(op, request):
    """The items a write names, as hashable (table, key) pairs."""
    def one(table, key):
        return (table, json.dumps(key, sort_keys=True))

    if op == "TransactWriteItems":
        out = []
        for entry in request.get("TransactItems", []):
            for action in entry.values():
                key = action.get("Key") or action.get("Item")
                if key is not None and action.get("TableName"):
                    item = action.get("Item")
                    # A Put names its whole item: its key is the table's key attributes (pk here).
                    out.append(one(action["TableName"], {"pk": item["pk"]} if item and "pk" in item else key))
        return out
    key = request.get("Key") or ({"pk": request["Item"]["pk"]} if "pk" in request.get("Item", {}) else None)
    return [one(request.get("TableName"), key)] if key is not None else []


class Conflicts:
    """WSGI middleware: latency in flight, conflicts between requests in flight, moto one at a time."""

    def __init__(self, app, latency_s):
        self.app, self.latency_s = app, latency_s
        self.serve = threading.Lock()  # moto: one request at a time
        self.state = threading.Lock()
        self.in_transactions = {}  # item -> transactions in flight writing it
        self.in_writes = {}  # item -> single-item writes in flight
        self.counts = {"transactions": 0, "transaction_conflicts": 0, "writes": 0, "write_conflicts": 0}

    def _answer(self, start_response, status, body):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(data)))])
        return [data]

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/flashstock/conflicts":
            with self.state:
                return self._answer(start_response, "200 OK", dict(self.counts))
        op = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        keys = []
        if op == "TransactWriteItems" or op in _WRITES:
            try:
                keys = _item_keys(op, json.loads(body or b"{}"))
            except (ValueError, KeyError, TypeError, AttributeError):
                keys = []
        mine = self.in_transactions if op == "TransactWriteItems" else self.in_writes
        with self.state:
            if op == "TransactWriteItems":
                self.counts["transactions"] += 1
                busy = [k in self.in_transactions or k in self.in_writes for k in keys]
                if any(busy):
                    self.counts["transaction_conflicts"] += 1
                    reasons = [
                        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                        if b else {"Code": "None"}
                        for b in busy
                    ]
                    codes = ", ".join(r["Code"] for r in reasons)
                    return self._answer(start_response, "400 Bad Request", {
                        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                        "message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                        "CancellationReasons": reasons,
                    })
            elif op in _WRITES:
                self.counts["writes"] += 1
                if any(k in self.in_transactions for k in keys):
                    self.counts["write_conflicts"] += 1
                    return self._answer(start_response, "400 Bad Request", {
                        "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                        "message": "Transaction is ongoing for the item",
                    })
            for k in keys:
                mine[k] = mine.get(k, 0) + 1
        # The items are busy while the request is in flight (its latency), as in DynamoDB; not
        # while it then queues for moto's single thread, which DynamoDB has no counterpart of
        # (held through that queue, every item of a loaded emulator looked busy for as long as
        # the queue was deep). moto then applies requests one at a time, conditions checked.
        try:
            time.sleep(self.latency_s)
        finally:
            with self.state:
                for k in keys:
                    mine[k] -= 1
                    if mine[k] == 0:
                        del mine[k]
        with self.serve:
            return list(self.app(environ, start_response))


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    if os.environ.get("FLASHSTOCK_DYNAMODB_CONFLICTS") == "1":
        latency_ms = float(os.environ.get("FLASHSTOCK_DYNAMODB_LATENCY_MS", "10"))
        run_simple(host, port, Conflicts(app, latency_ms / 1000), threaded=True, request_handler=MotoRequestHandler)
    else:
        run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
