#!/usr/bin/env python3
"""Prints sitrep alert transitions as they happen, and resumes where it left off.

    python3 -m venv .venv && .venv/bin/pip install nats-py
    .venv/bin/python examples/alerts/subscriber.py            # all alerts
    .venv/bin/python examples/alerts/subscriber.py --subject 'sitrep.alert.critical.>'

It reads the JetStream stream SITREP_ALERTS through a durable consumer (named by --durable), so
after a restart it goes on from the first transition it has not acknowledged. Each transition
arrives once: sitrep publishes it with its event id as Nats-Msg-Id. Transitions whose "notify"
is false (silenced, or impacted by a failed parent) are shown but marked; a pager would skip them.
"""
import argparse
import asyncio
import json

import nats
from nats.errors import TimeoutError as NatsTimeout


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS URL (default %(default)s)")
    p.add_argument("--stream", default="SITREP_ALERTS", help="alert stream (default %(default)s)")
    p.add_argument("--subject", default="sitrep.alert.>", help="subjects to follow (default %(default)s)")
    p.add_argument("--durable", default="alert-printer", help="consumer name to resume with (default %(default)s)")
    p.add_argument("--count", type=int, default=0, help="stop after this many transitions (0: never)")
    args = p.parse_args()

    nc = await nats.connect(args.nats)
    js = nc.jetstream()
    sub = await js.pull_subscribe(args.subject, durable=args.durable, stream=args.stream)
    seen = 0
    try:
        while args.count == 0 or seen < args.count:
            try:
                msgs = await sub.fetch(10, timeout=5)
            except NatsTimeout:
                continue
            for msg in msgs:
                a = json.loads(msg.data)
                quiet = "" if a["notify"] else "  (no notification)"
                who = f" by {a['by']}" if a.get("by") else ""
                who += f": {a['comment']}" if a.get("comment") else ""
                why = f" ({a['reason']})" if a.get("reason") else ""
                print(f"{a['at']} {a['severity'].upper():8} {a['transition'].upper():12} "
                      f"{a['system']}/{a['component']}: {a['summary']}{who}{why}{quiet}", flush=True)
                await msg.ack()
                seen += 1
    finally:
        await nc.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
