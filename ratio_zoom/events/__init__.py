"""Events for the core app: a durable outbox (`outbox.enqueue`) and its delivery loop (`EventDispatcher`),
signed in the Standard Webhooks format. The payloads are the contract in `ratio_zoom/contract/events.py`."""
