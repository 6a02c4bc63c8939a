"""Send track events to a Switchyard host through an official Python SDK, with
gzip on, in sync mode (each flush is one POST /v1/batch). Run by tests/sdk.rs:

    send.py {rudder|segment} HOST_URL WRITE_KEY PREFIX N

Exits 0 when the SDK reported no error, 1 otherwise (the errors on stderr).
"""
import sys

errors = []


def on_error(error, items):
    errors.append(f"{error} ({len(items)} events)")


def main():
    sdk, host, write_key, prefix, n = sys.argv[1:6]
    if sdk == "rudder":
        from rudderstack.analytics.client import Client
    elif sdk == "segment":
        from segment.analytics.client import Client
    else:
        sys.exit(f"unknown sdk {sdk}")
    client = Client(write_key, host=host, gzip=True, sync_mode=True, on_error=on_error, max_retries=0)
    for i in range(int(n)):
        client.track(
            user_id=f"user-{i % 7}",
            event="Order Completed",
            properties={"total": i, "currency": "EUR"},
            message_id=f"{prefix}-{i}",
        )
    client.flush()
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)


main()
