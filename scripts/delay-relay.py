#!/usr/bin/env python3
"""A delaying TCP relay for scripts/bench-ansible.sh (not a test; CI does not run it).

This kernel has no netem, so the benchmark puts one of these in front of each lab host's sshd:
it listens on 127.0.0.1:<port> and forwards to <host>:22, holding every chunk for DELAY_MS in
each direction (a delay line: chunks keep their order and are not delayed more by queueing), so
a round trip costs 2 x DELAY_MS more. It counts connections and round trips: one round trip per
turn of a connection's traffic from client->server to server->client (a request answered).

Usage: delay-relay.py DELAY_MS STATS_FILE LISTEN_PORT:TARGET_HOST:TARGET_PORT...
On SIGTERM it writes {"connections": N, "round_trips": N} to STATS_FILE and exits.
Only forwards to the targets named on its command line (the bench's own lab namespaces).
"""
import asyncio
import json
import signal
import sys
import time

stats = {"connections": 0, "round_trips": 0}


async def pipe(reader, writer, delay, turn):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            turn()
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def handle(client_r, client_w, host, port, delay):
    stats["connections"] += 1
    try:
        server_r, server_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    last = {"dir": None}

    def turn_to(direction):
        def mark():
            if direction == "s2c" and last["dir"] == "c2s":
                stats["round_trips"] += 1
            last["dir"] = direction
        return mark

    await asyncio.gather(
        pipe(client_r, server_w, delay, turn_to("c2s")),
        pipe(server_r, client_w, delay, turn_to("s2c")),
    )
    for w in (client_w, server_w):
        w.close()


async def main():
    delay = float(sys.argv[1]) / 1000.0
    stats_file = sys.argv[2]
    servers = []
    for spec in sys.argv[3:]:
        listen, host, port = spec.split(":")
        servers.append(
            await asyncio.start_server(
                lambda r, w, h=host, p=int(port): handle(r, w, h, p, delay),
                "127.0.0.1",
                int(listen),
            )
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
    with open(stats_file, "w") as f:
        json.dump(stats, f)


asyncio.run(main())
