"""Serve moto's SQS (threaded, for long polling) without its O(queue length) send path.

moto's SendMessage / SendMessageBatch read `queue.attributes` for one flag
(ContentBasedDeduplication), and ReceiveMessage reads it once per message for the retention
period; building that dict counts every message of the queue three times
(ApproximateNumberOfMessages, …NotVisible, …Delayed). With a few thousand messages queued — any
flash sale — each send takes tens of milliseconds under the GIL, each receive far more, and the
local stack measures the emulator. Inside those calls the three counts (which they never use)
read as 0; GetQueueAttributes and everything else are unchanged.

usage: moto_sqs.py HOST PORT
"""

import os
import sys
import threading

import moto_untracked  # noqa: F401  (first: stops moto's instance tracking, see its header)
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.sqs import models

_sending = threading.local()


def _skip_while_sending(prop):
    def fget(self):
        return 0 if getattr(_sending, "on", False) else prop.fget(self)

    return property(fget)


def _sending_section(method):
    def wrapped(self, *args, **kwargs):
        before = getattr(_sending, "on", False)
        _sending.on = True
        try:
            return method(self, *args, **kwargs)
        finally:
            _sending.on = before

    return wrapped


for name in (
    "approximate_number_of_messages",
    "approximate_number_of_messages_not_visible",
    "approximate_number_of_messages_delayed",
):
    setattr(models.Queue, name, _skip_while_sending(getattr(models.Queue, name)))
# ReceiveMessage checks each message's retention period through the same attributes dict.
for name in ("send_message", "send_message_batch", "is_message_valid_based_on_retention_period"):
    setattr(models.SQSBackend, name, _sending_section(getattr(models.SQSBackend, name)))

if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
