"""A fork server for the training tests: import the trainer once, then run each `egoworld` command in a
fresh forked child, so a restart costs seconds instead of the ~25 s it takes to import torch + diffusers.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.
    {"op": "start", "argv": [...], "log": PATH} -> {"pid": N}      (stdout+stderr of the child go to PATH)
    {"op": "poll", "pid": N}                   -> {"code": int|null} (null while the child runs)
A child is an ordinary process: the tests SIGKILL it by pid. It never shares state with another child
(each is forked from this server, which imports modules but builds nothing).
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def _child(argv: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    code = 1
    try:
        from egoworld.cli import main

        code = main(argv)
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported in the log, like an uncaught error would be
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import accelerate  # noqa: F401 - the heavy imports, done once
    import diffusers.optimization  # noqa: F401
    import diffusers.training_utils  # noqa: F401

    import egoworld.cli  # noqa: F401
    import egoworld.data.factory  # noqa: F401
    import egoworld.train  # noqa: F401
    import egoworld.worlds.generate  # noqa: F401

    reply = sys.stdout
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "start":
            pid = os.fork()
            if pid == 0:
                _child(req["argv"], req["log"])
            print(json.dumps({"pid": pid}), file=reply, flush=True)
        elif req["op"] == "poll":
            pid, status = os.waitpid(req["pid"], os.WNOHANG)
            code = os.waitstatus_to_exitcode(status) if pid else None
            print(json.dumps({"code": code}), file=reply, flush=True)


if __name__ == "__main__":
    serve()
