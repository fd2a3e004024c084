"""Admin commands over the bus: one request on <prefix>.admin.<command>.

The admin actor replies {"ok": true, "result": ...} or {"ok": false,
"error": "..."} (docs/protocol.md). A refusal becomes Clipper's
ClipperException("Received error status code: 400 and message: <error>"),
so scripts that matched Clipper's texts keep working; a bus failure becomes a
ClipperException that says which subject and why.
"""
import json
import logging

from ._bus import BusError, BusTimeout, NoResponders
from .exceptions import ClipperException

logger = logging.getLogger(__name__)

ADMIN_TIMEOUT_MS = 30000


def admin_call(bus, command, body, timeout_ms=ADMIN_TIMEOUT_MS, log_errors=True):
    """Sends one admin command and returns its result (decoded JSON)."""
    payload = json.dumps(body if body is not None else {}).encode("utf-8")
    subject = "{}.admin.{}".format(bus.prefix, command)
    try:
        raw = bus.admin(command, payload, timeout_ms)
    except NoResponders:
        raise ClipperException(
            "No admin actor answers on {} (NATS {}): is the cluster with prefix "
            "'{}' running?".format(subject, bus.url, bus.prefix))
    except BusTimeout:
        raise ClipperException(
            "The admin actor did not answer {} within {} ms".format(
                subject, timeout_ms))
    except BusError as e:
        raise ClipperException("Admin command {} failed: {}".format(command, e))
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ClipperException(
            "The admin actor sent a reply to {} that is not JSON ({}): {!r}".format(
                command, e, raw[:200]))
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ClipperException(
            "The admin actor sent a reply to {} without \"ok\": {!r}".format(
                command, raw[:200]))
    if reply["ok"] is not True:
        msg = "Received error status code: {code} and message: {msg}".format(
            code=400, msg=reply.get("error", ""))
        if log_errors:
            logger.error(msg)
        raise ClipperException(msg)
    return reply.get("result")
