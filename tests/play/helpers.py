"""Helpers for the play tests: polling, sessions over HTTP."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    """Poll `predicate()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def new_session(client) -> str:
    r = client.post("/api/sessions")
    assert r.status_code == 200, r.text
    return r.json()["session"]


def status(client, sid: str) -> dict:
    r = client.get(f"/api/sessions/{sid}")
    assert r.status_code == 200, r.text
    return r.json()


def command(client, sid: str, **message) -> dict:
    r = client.post(f"/api/sessions/{sid}/command", json=message)
    assert r.status_code == 200, r.text
    return r.json()


def settled(client, sid: str, length: int, timeout: float = 60.0) -> dict:
    """Wait until the walk has `length` frames and nothing is queued or being made."""

    def done():
        s = status(client, sid)
        return s if s["length"] == length and not s["busy"] and s["pending"] == 0 else None

    return wait_until(done, timeout, f"a walk of {length} frames")
