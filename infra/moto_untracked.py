"""Imported first by the local moto servers (moto_serial.py, moto_sqs.py): stop moto's model
instance tracking, a memory leak in a long-running server.

moto appends every model object it ever creates (each DynamoDB item, each copy a transaction
takes, each SQS message) to a class-level list, so that its in-process mocks can reset them. A
server never uses that reset, and with the list nothing is ever freed: a benchmark of 10,000
persist invocations grew the DynamoDB server past 12 GB. Objects are created exactly as before,
just not remembered.
"""

from moto.core import common_models


def _untracked_new(cls, *args, **kwargs):
    return object.__new__(cls)


common_models.BaseModel.__new__ = _untracked_new
