"""A session of etcd3gw (the JSON-gateway client OpenStack uses) against one endpoint.

Prints one line per step with what the client returned, leaving out what differs from
server to server (revisions, lease ids, member ids), so that two servers can be compared
line by line. Exits non-zero, naming the step, on the first exception.

    python3 etcd3gw_session.py HOST PORT
"""
import sys
import threading
import time

import etcd3gw

host, port = sys.argv[1], int(sys.argv[2])
client = etcd3gw.client(host=host, port=port, timeout=10)
step = "start"


def show(name, value):
    print(f"{name}: {value!r}", flush=True)


def values(pairs):
    return sorted((bytes(v), m["key"]) for v, m in pairs)


try:
    step = "version discovery"
    show("api_path", client.api_path)
    step = "status"
    status = client.status()
    show("status has a leader", int(status["leader"]) != 0)
    step = "members"
    show("members", len(client.members()))

    step = "put and get"
    show("put", client.put("/etc3gw/a", "1"))
    show("put", client.put("/etc3gw/b", b"\x00\xff binary"))
    show("get", client.get("/etc3gw/a"))
    show("get missing", client.get("/etc3gw/none"))
    show("get with metadata", [(v, m["key"], m["version"]) for v, m in client.get("/etc3gw/a", metadata=True)])
    show("get_prefix", values(client.get_prefix("/etc3gw/")))
    show("get_prefix sorted", [m["key"] for _, m in client.get_prefix("/etc3gw/", sort_order="descend", sort_target="key")])
    show("get_all has ours", all(m["key"].startswith(b"/etc3gw/") for _, m in client.get_all() if m["key"].startswith(b"/etc3gw")))

    step = "transactions"
    show("create new", client.create("/etc3gw/c", "3"))
    show("create existing", client.create("/etc3gw/c", "other"))
    show("replace matching", client.replace("/etc3gw/c", "3", "33"))
    show("replace stale", client.replace("/etc3gw/c", "3", "34"))
    show("get after replace", client.get("/etc3gw/c"))

    step = "delete"
    show("delete", client.delete("/etc3gw/c"))
    show("delete missing", client.delete("/etc3gw/c"))

    step = "lease"
    lease = client.lease(ttl=30)
    show("lease ttl in range", 25 <= lease.ttl() <= 30)
    show("put with lease", client.put("/etc3gw/leased", "x", lease=lease))
    show("lease keys", lease.keys())
    show("refresh", lease.refresh())
    show("revoke", lease.revoke())
    show("leased key gone", client.get("/etc3gw/leased"))

    step = "lock"
    lock = client.lock(id="etc3gw-lock", ttl=30)
    show("acquire", lock.acquire())
    show("is_acquired", lock.is_acquired())
    show("refresh", lock.refresh() > 0)
    show("release", lock.release())
    show("is_acquired after release", lock.is_acquired())

    step = "watch"
    events, cancel = client.watch_prefix("/etc3gw/w/")
    def writer():
        time.sleep(0.5)
        client.put("/etc3gw/w/1", "one")
        client.put("/etc3gw/w/2", "two")
        client.delete("/etc3gw/w/1")
    threading.Thread(target=writer, daemon=True).start()
    seen = []
    for event in events:
        seen.append((event.get("type", "PUT"), event["kv"]["key"], event["kv"].get("value")))
        if len(seen) == 3:
            break
    cancel()
    show("watched", seen)

    step = "watch_once"
    def late_put():
        time.sleep(0.5)
        client.put("/etc3gw/once", "1")
    threading.Thread(target=late_put, daemon=True).start()
    event = client.watch_once("/etc3gw/once", timeout=10)
    show("watch_once", (event["kv"]["key"], event["kv"]["value"]))

    step = "delete_prefix"
    show("delete_prefix", client.delete_prefix("/etc3gw/"))
    show("after delete_prefix", client.get_prefix("/etc3gw/"))
except Exception as e:  # noqa: BLE001: any failure ends the session, named
    print(f"FAILED at {step}: {type(e).__name__}: {e}", flush=True)
    sys.exit(1)
