"""``reconcile --watch``: the process around the loop.

It claims the cache (one controller per cache), serves the HTTP API, runs the schedule and the
manifest watcher, and turns signals into actions: SIGTERM and SIGINT stop at the next safe
point (a transfer between two chunks, its partial kept) and write the final status; SIGHUP
re-reads the manifests.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType

from controller.api.app import create_app
from controller.api.discovery import Info, token_from_env
from controller.api.listener import ApiListener, InsecureBind, check_bind
from controller.hub import revisions
from controller.manifest.loading import Rejected, load
from controller.runtime.claim import AlreadyRunning, CacheClaim
from controller.runtime.loop import Controller
from controller.runtime.manifest_watch import ManifestWatcher
from controller.runtime.schedule import Schedule
from controller.system.clock import utcnow
from controller.system.exits import ExitCode

log = logging.getLogger("modelsync.service")

# How long a stop waits for the running pass to reach a safe point.  Transfers and hashing
# stop within a chunk; a filesystem stalled under a read may take longer, in which case the
# process exits anyway (every write is crash-safe, so an exit at any instant loses nothing).
STOP_GRACE_SECONDS = 10.0


def run(
    path: str,
    *,
    host: str | None = None,
    port: int | None = None,
    locked: bool = False,
    offline: bool = False,
) -> int:
    """``offline``: no pass asks the hub about revisions
    (:class:`~controller.runtime.loop.Controller`)."""
    try:
        loaded = load(path, locked=locked)
    except Rejected as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print("the manifests are invalid; the controller did not start", file=sys.stderr)
        return ExitCode.ERROR
    revisions.configure(loaded.desired.endpoint)
    settings = loaded.settings
    host = host or settings.host
    port = settings.port if port is None else port
    token = token_from_env()
    try:
        check_bind(host, token)
    except InsecureBind as e:
        print(f"reconcile: {e}", file=sys.stderr)
        return ExitCode.ERROR
    claim = CacheClaim(loaded.desired.state_dir)
    try:
        claim.take()
    except AlreadyRunning as e:
        print(f"reconcile: {e}", file=sys.stderr)
        return ExitCode.ERROR
    except OSError as e:
        print(f"reconcile: cannot claim {claim.state_dir}: {e.strerror or e}", file=sys.stderr)
        return ExitCode.ERROR
    try:
        controller = Controller(path, loaded, locked=locked, offline=offline)
        try:
            http = ApiListener(create_app(controller, token=token), host, port)
        except OSError as e:
            print(f"reconcile: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
            return ExitCode.ERROR
        info = Info(os.getpid(), http.url, utcnow().isoformat(), str(path), socket.gethostname())
        clean = _serve(controller, http, path, claim, announce=lambda: claim.publish(info))
    finally:
        claim.release()
    code = ExitCode.ERROR if http.failed or claim.lost else ExitCode.OK
    if not clean:
        log.warning("the running pass did not stop within %g s; exiting", STOP_GRACE_SECONDS)
        logging.shutdown()
        os._exit(code)  # worker threads still hashing would otherwise hold the exit up
    return code


def _serve(
    controller: Controller,
    http: ApiListener,
    path: str,
    claim: CacheClaim,
    *,
    announce: Callable[[], None],
) -> bool:
    stopping = threading.Event()

    def stop(signum: int, _: FrameType | None) -> None:
        log.info("%s: stopping at the next safe point", signal.Signals(signum).name)
        stopping.set()

    def reread(_signum: int, _frame: FrameType | None) -> None:
        log.info("SIGHUP: re-reading the manifests")
        # Off the signal handler: a reload reads files and may wait for a lock.
        threading.Thread(target=controller.reload, kwargs={"force": True}, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, reread)
    desired = controller.loaded.desired
    watcher = ManifestWatcher(
        path,
        controller.reload,
        ignore=[desired.status_file, desired.state_dir, desired.cache_dir],
    )
    schedule = Schedule(controller)
    # The loop, its clocks and the watcher run before the API answers and before the address
    # is published: a probe that arrives at once then finds a live controller, where
    # /healthz would otherwise say "loop stopped".
    controller.start()
    schedule.start()
    watcher.start()
    http.start()
    announce()
    log.info(
        "controller running: %d model(s) from %s; API at %s%s",
        len(desired.models),
        path,
        http.url,
        "; offline: no request is sent to the hub" if controller.offline else "",
        extra={"url": http.url, "pid": os.getpid(), "offline": controller.offline},
    )
    while not stopping.wait(1.0):
        if http.failed:
            log.error("the HTTP API stopped serving; stopping the controller")
            break
        if claim.lost:
            # Another controller judged this one dead (it was frozen past the claim's
            # timeout) and now manages the cache: two must never run, so this one goes.
            log.error("another controller took over the claim on the cache; stopping")
            break
    watcher.stop()
    schedule.stop()
    clean = controller.stop(STOP_GRACE_SECONDS)
    http.stop()
    log.info("controller stopped")
    return clean
