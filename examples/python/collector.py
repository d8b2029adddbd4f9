#!/usr/bin/env python3
"""Reports the health of the host it runs on to sitrep, over NATS JetStream.

    SITREP_SYSTEM=derecho python3 examples/python/collector.py --once
    python3 examples/python/collector.py --system derecho --interval 60

Each report is component host/<short hostname> of the system: load (/proc/loadavg) against the
CPU count, and how full the local filesystems are (df -P -k -l). The status is failed when a
filesystem is at least 95% full, degraded at 90% or when the 1-minute load is above twice the
CPUs, else ok. Reports are published with a JetStream publish, which waits for the server's ack,
on <prefix>.report.<system> with a Nats-Msg-Id unique per report (see docs/collectors.md).

Needs nats-py (pip install nats-py). Options can also come from the environment:
SITREP_SYSTEM, SITREP_NATS_URL and SITREP_SUBJECT_PREFIX.
"""
import argparse
import asyncio
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import time

import nats
from nats.js.errors import APIError, NoStreamResponseError

SYSTEM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
FAILED_PCT = 95.0
DEGRADED_PCT = 90.0
# Filesystem types that hold no data worth watching (memory, kernel and image filesystems).
PSEUDO_FS = {
    "tmpfs", "devtmpfs", "ramfs", "squashfs", "proc", "sysfs", "devpts", "cgroup", "cgroup2",
    "iso9660", "udf", "efivarfs", "tracefs", "debugfs", "securityfs", "autofs",
}
MAX_TTL_SECONDS = 30 * 24 * 3600


def short_hostname() -> str:
    name = socket.gethostname().split(".")[0] or "localhost"
    # Component names allow ASCII letters, digits and - _ . @ + only.
    return re.sub(r"[^A-Za-z0-9._@+-]", "-", name)


def load_average() -> tuple[float, float, float]:
    with open("/proc/loadavg", encoding="ascii") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)


def fs_types() -> dict[str, str]:
    """Mount point to filesystem type, from /proc/mounts (empty where there is none)."""
    types = {}
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    # /proc/mounts escapes spaces in mount points as \040.
                    types[parts[1].replace("\\040", " ")] = parts[2]
    except OSError:
        pass
    return types


def filesystems() -> list[tuple[str, float]]:
    """(mount point, percent used) of each local filesystem that holds data."""
    # df exits non-zero when one filesystem cannot be read, yet still prints the others.
    out = subprocess.run(["df", "-P", "-k", "-l"], capture_output=True, text=True, timeout=30, check=False)
    if not out.stdout.strip():
        raise RuntimeError(f"df -P -k -l printed nothing: {out.stderr.strip()}")
    types = fs_types()
    result = []
    for line in out.stdout.splitlines()[1:]:
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[1].isdigit():
            continue
        used, avail, mount = int(parts[2]), int(parts[3]), parts[5]
        if types.get(mount) in PSEUDO_FS or used + avail == 0:
            continue
        result.append((mount, 100.0 * used / (used + avail)))
    return result


def build_report(system: str, component: str, ttl_seconds: int) -> dict:
    load_1m, load_5m, load_15m = load_average()
    cpus = os.cpu_count() or 1
    fss = filesystems()
    fullest = max(fss, key=lambda f: f[1], default=None)
    root = next((pct for mount, pct in fss if mount == "/"), None)

    reasons = []
    status = "ok"
    for mount, pct in sorted(fss, key=lambda f: -f[1]):
        if pct >= FAILED_PCT:
            status = "failed"
            reasons.append(f"{mount} is {pct:.1f}% full")
        elif pct >= DEGRADED_PCT:
            status = "degraded" if status == "ok" else status
            reasons.append(f"{mount} is {pct:.1f}% full")
    if load_1m > 2 * cpus:
        status = "degraded" if status == "ok" else status
        reasons.append(f"load {load_1m:.2f} is above twice the {cpus} CPUs")
    if reasons:
        message = "; ".join(reasons)
    else:
        message = f"load {load_1m:.2f} on {cpus} CPUs"
        if fullest:
            message += f"; fullest filesystem {fullest[0]} at {fullest[1]:.1f}%"
    if len(message) > 1000:
        message = message[:997] + "..."

    metrics = {"load_1m": load_1m, "load_5m": load_5m, "load_15m": load_15m, "cpus": cpus,
               "filesystems": len(fss)}
    if root is not None:
        metrics["root_used_pct"] = round(root, 2)
    if fullest is not None:
        metrics["max_fs_used_pct"] = round(fullest[1], 2)

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {
        "system": system,
        "component": component,
        "status": status,
        "observed_at": now.isoformat().replace("+00:00", "Z"),
        "message": message,
        "metrics": metrics,
        "labels": {"kind": "host"},
        "ttl_seconds": ttl_seconds,
    }


class Fatal(Exception):
    """An error that retrying will not fix."""


async def publish(js, subject: str, report: dict, host: str) -> str:
    msg_id = f"{host}-collector-{time.time_ns()}"
    payload = json.dumps(report, separators=(",", ":")).encode()
    try:
        ack = await js.publish(subject, payload, timeout=10, headers={"Nats-Msg-Id": msg_id})
    except NoStreamResponseError:
        raise Fatal(f"no JetStream stream captures {subject}; is sitrep ingest running?") from None
    except APIError as e:
        raise Fatal(f"JetStream refused the report on {subject}: {e}") from None
    dup = ", duplicate" if ack.duplicate else ""
    return (f"published {report['component']} status={report['status']} to {subject} "
            f"(stream {ack.stream} seq {ack.seq}{dup})")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", default=os.environ.get("SITREP_SYSTEM"),
                   help="the system this host belongs to (env SITREP_SYSTEM; required)")
    p.add_argument("--once", action="store_true", help="publish one report and exit")
    p.add_argument("--interval", type=int, default=60,
                   help="seconds between reports (default %(default)s); ttl_seconds is 3 times this")
    p.add_argument("--nats-url", default=os.environ.get("SITREP_NATS_URL", "nats://127.0.0.1:4222"),
                   help="NATS server (env SITREP_NATS_URL; default %(default)s)")
    p.add_argument("--subject-prefix", default=os.environ.get("SITREP_SUBJECT_PREFIX", "sitrep"),
                   help="subject prefix (env SITREP_SUBJECT_PREFIX; default %(default)s)")
    args = p.parse_args(argv)
    if not args.system:
        p.error("no system given: pass --system NAME or set SITREP_SYSTEM (for example derecho)")
    if not SYSTEM_RE.fullmatch(args.system):
        p.error(f"system {args.system!r} must be 1-64 ASCII letters, digits, '-' or '_', "
                "starting with a letter or digit")
    if not 1 <= args.interval <= MAX_TTL_SECONDS // 3:
        p.error(f"--interval must be from 1 to {MAX_TTL_SECONDS // 3} seconds")
    return args


async def connect(url: str):
    seen = []

    async def remember(e: Exception) -> None:  # nats-py would print a traceback for each
        seen.append(e)

    try:
        return await nats.connect(url, connect_timeout=5, reconnect_time_wait=2, max_reconnect_attempts=3,
                                  error_cb=remember)
    except Exception as e:
        why = seen[-1] if seen else e
        raise RuntimeError(f"cannot connect to NATS at {url}: {why or type(why).__name__}") from None


async def run(args: argparse.Namespace) -> int:
    host = short_hostname()
    component = f"host/{host}"
    subject = f"{args.subject_prefix}.report.{args.system}"
    nc = None
    try:
        while True:
            started = time.monotonic()
            try:
                if nc is None or nc.is_closed:
                    nc = await connect(args.nats_url)
                report = build_report(args.system, component, 3 * args.interval)
                print(await publish(nc.jetstream(), subject, report, host), flush=True)
            except Fatal as e:
                print(e, file=sys.stderr)
                return 1
            except Exception as e:  # NATS down or slow, df hung: try again next time
                print(f"could not publish a report: {e or type(e).__name__}", file=sys.stderr, flush=True)
                if args.once:
                    return 1
            if args.once:
                return 0
            await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    finally:
        if nc is not None and not nc.is_closed:
            await nc.close()


def main() -> int:
    args = parse_args()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
