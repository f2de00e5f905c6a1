"""Serve moto one request at a time (used for the local DynamoDB).

moto's DynamoDB transactions are not isolated under its default threaded server: it checks each
item's condition and applies it in turn without a lock, and a cancelled transaction restores a
copy of the whole table taken at its start. Two concurrent transactions on one item can then both
"win", and a rollback can undo another request's committed write. Real DynamoDB serialises writes
per item and applies a transaction atomically; serving one request at a time gives the local
stack at least that guarantee. SQS keeps its own threaded moto (long polling needs concurrency).

It also makes a transaction's rollback copy cost what the transaction touches: moto deep-copies
every table a transaction names before it starts (to restore on cancel), which is O(table) per
transaction and made a few thousand orders take minutes. Here the copy is the table's item index
one level deep plus deep copies of only the items the transaction names (Put items, Update /
Delete / ConditionCheck keys); restoring it on cancel gives the same result, since nothing else
can change while one request is served at a time.

usage: moto_serial.py HOST PORT
"""

import copy
import os
import sys

import moto_untracked  # noqa: F401  (first: stops moto's instance tracking, see its header)
from werkzeug.serving import run_simple
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

_deepcopy = copy.deepcopy


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

if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
