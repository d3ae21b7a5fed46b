"""Prefect's own client against the server at PREFECT_API_URL, as a person's flow code uses it.

With `run`: registers a flow, creates a run of it and reads it back. With `subscribe`: opens
an event subscription (a WebSocket), emits an event over the events WebSocket and waits for it
to come back. Prints one JSON line with what happened; the exit status is 0 only when it all
worked. Credentials come from the environment (PREFECT_API_AUTH_STRING,
PREFECT_CLIENT_CUSTOM_HEADERS), the way Prefect's guide says to give them.
"""

import asyncio
import json
import sys
import uuid


async def run() -> dict:
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow(name="gatehouse-e2e")
    def answer() -> int:
        return 42

    async with get_client() as client:
        flow_run = await client.create_flow_run(answer)
        read = await client.read_flow_run(flow_run.id)
        return {"flow_run": str(read.id), "flow_id": str(read.flow_id), "state": read.state.type.value}


async def subscribe() -> dict:
    from prefect.events import Event
    from prefect.events.clients import PrefectEventsClient, PrefectEventSubscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    name = f"gatehouse.e2e.{uuid.uuid4().hex}"
    event_filter = EventFilter(event=EventNameFilter(name=[name]))
    async with PrefectEventSubscriber(filter=event_filter, reconnection_attempts=0) as subscriber:
        async with PrefectEventsClient(reconnection_attempts=0) as events:
            await events.emit(Event(event=name, resource={"prefect.resource.id": "gatehouse.e2e"}))
        received = await asyncio.wait_for(subscriber.__anext__(), timeout=30)
        return {"received": received.event}


async def main() -> int:
    what = sys.argv[1]
    try:
        result = await (run() if what == "run" else subscribe())
    except Exception as error:  # the test reads the failure from the JSON line
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
