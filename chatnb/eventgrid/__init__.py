"""Event Grid and ACS chat events: parse deliveries, receive them locally, manage the emulator's
subscriptions.

- :func:`parse_event_grid` turns an Event Grid delivery (Event Grid or CloudEvents schema, one event or a
  batch) of the 16 ``Microsoft.Communication.Chat*`` types into the :mod:`chatnb.events` objects the live
  stream yields (:mod:`chatnb.eventgrid.parse`);
- :class:`Receiver` is a webhook on a free loopback port that answers the validation handshakes and
  collects deliveries into typed events and a DataFrame (:mod:`chatnb.eventgrid.receiver`);
- :class:`EventGridSubscriptions` adds, lists and removes the subscriptions of a running chatnb emulator
  (:mod:`chatnb.eventgrid.subscriptions`); the emulator delivers as Event Grid does
  (:mod:`chatnb.emulator.griddelivery`).

>>> import chatnb
>>> from chatnb.emulator import Emulator
>>> with Emulator() as emu, Receiver() as rx:
...     emu.event_grid.add(rx.url)                  # every chat event type, in the Event Grid schema
...     with chatnb.connect(emu.connection_string) as session:
...         thread = session.user("Ann").create_thread("Lunch", participants=["Bob"])
...         thread.send_message("Pizza?")
...         [received] = rx.wait_for("ChatMessageReceived")   # Bob's: the sender gets none
>>> received.message
'Pizza?'
"""

from .parse import EVENT_GRID_TYPES, SubscriptionValidationEvent, parse_event_grid, webhook_handshake_headers
from .receiver import Delivery, ReceivedEvent, Receiver
from .subscriptions import EventGridSubscriptions

__all__ = [
    "EVENT_GRID_TYPES",
    "Delivery",
    "EventGridSubscriptions",
    "ReceivedEvent",
    "Receiver",
    "SubscriptionValidationEvent",
    "parse_event_grid",
    "webhook_handshake_headers",
]
