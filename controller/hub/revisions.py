"""The hub, as modelsync talks to it: resolve a revision, and what its errors mean.

Questions carry ``huggingface_hub``'s headers (its token and user agent) and its settings
(``endpoint``, offline mode), and its reading of an error answer (gated, missing repo or
revision), so mirrors and auth behave exactly as they do for applications; the requests go
through :mod:`controller.hub.wire`, as files' bodies do (:mod:`controller.hub.transfer`).
Failures are mapped to :class:`HubError` with a :class:`~controller.domain.Reason` and a
message written for the person reading the status; no message ever contains a token.

huggingface_hub reads ``HF_ENDPOINT`` and friends once, at import time, so
:func:`configure` must run before anything imports it (the CLI calls it first thing).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import threading
import time
from urllib.parse import quote

from controller.cache.layout import UnsafePathError
from controller.domain import Reason, RemoteProblem, RemoteRevision
from controller.hub import wire
from controller.hub.answers import MalformedAnswer, parse_revision

# Re-exported: transfers and the engine have always caught it from here.
from controller.hub.errors import HubError as HubError
from controller.hub.watchdog import DEFAULT_FLOOR, SpeedFloor, Transfer, Watchdog

# hub metadata calls have no timeout by default (HF_HUB_FACTS §1.2); a stalled mirror must
# not hang a reconcile.
METADATA_TIMEOUT_S = 30.0
RESOLVE_RETRY_DELAYS_S = (0.25, 0.75)
ANSWER_READ_BYTES = 64 * 1024
HEADERS_FRESH_S = 5.0

_HEADERS_LOCK = threading.Lock()
_HEADERS: dict[tuple[object, ...], tuple[float, dict[str, str]]] = {}

_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")
_URL_RE = re.compile(r"https?://[^\s'\"<>]+")


def configure(endpoint: str) -> None:
    """Point huggingface_hub's process-wide settings at ``endpoint`` before it is imported.

    An explicit ``endpoint`` is also passed to every call; the environment matters for the
    few requests huggingface_hub makes on its own (its agent registry look-up).
    """
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def redact(text: str) -> str:
    """Remove anything shaped like a token, and the configured one, from ``text``."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        text = text.replace(token, "***")
    return _TOKEN_RE.sub("hf_***", text)


def resolve(
    repo: str, revision: str, endpoint: str, speed_floor: SpeedFloor = DEFAULT_FLOOR
) -> RemoteRevision | RemoteProblem:
    """What ``repo@revision`` contains, or why the hub could not say.

    huggingface_hub does not retry ``model_info`` at all (HF_HUB_FACTS §1.2), so a single
    reset connection or 503 would leave the model unknown for this pass: transient failures
    get a few quick, jittered retries.  Longer outages are the controller's backoff's job.
    An answer slower than ``speed_floor`` is cut like a file's body is.
    """
    answer, transient = _resolve_once(repo, revision, endpoint, speed_floor)
    for delay in RESOLVE_RETRY_DELAYS_S:
        if not transient:
            break
        time.sleep(delay * (0.5 + random.random()))
        answer, transient = _resolve_once(repo, revision, endpoint, speed_floor)
    return answer


def _resolve_once(
    repo: str, revision: str, endpoint: str, speed_floor: SpeedFloor
) -> tuple[RemoteRevision | RemoteProblem, bool]:
    """The answer, and whether asking again might change it."""
    try:
        document = _revision_document(repo, revision, endpoint, speed_floor)
        return parse_revision(repo, revision, document), False
    except UnsafePathError as e:
        problem = RemoteProblem(Reason.UNSAFE_PATH, f"the hub listed an {e}; refusing the revision")
        return problem, False
    except MalformedAnswer as e:
        message = f"{endpoint} answered about {repo}@{revision} with malformed JSON: {e}"
        return RemoteProblem(Reason.MALFORMED_ANSWER, redact(message)), False
    except HubError as e:
        return RemoteProblem(e.reason, e.message), e.transient
    except Exception as e:  # every failure becomes a recorded problem, never a crash
        err = to_hub_error(e, repo=repo, revision=revision, endpoint=endpoint)
        return RemoteProblem(err.reason, err.message), err.transient


def _revision_document(repo: str, revision: str, endpoint: str, floor: SpeedFloor) -> object:
    """The decoded JSON of ``model_info(files_metadata=True)``'s request.

    The request ``HfApi.model_info`` sends, with its headers, but read as a stream: it reads
    the whole body in one call, which no watchdog can judge while it trickles in.  Sent
    through :mod:`controller.hub.wire` on a kept connection: through huggingface_hub's httpx
    session one such question cost about 1.4 ms of CPU, through ``http.client`` 0.2 ms, and a
    pass asks it once per model.
    """
    url = f"{endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}?blobs=True"
    watchdog = Watchdog(floor, f"{repo}@{revision}: the hub's answer", kind=Transfer.REVISION)
    # A connection silent for a whole watchdog window is as good as a trickle.
    read = min(METADATA_TIMEOUT_S, floor.window) if floor.enabled else METADATA_TIMEOUT_S
    try:
        body = _answer(url, read, watchdog)
    except wire.WireError as e:
        if e.timed_out and floor.enabled:
            raise watchdog.silent(read) from None
        raise
    try:
        return json.loads(body)
    except ValueError as e:
        raise MalformedAnswer(f"not JSON ({e})") from None


def _answer(url: str, read_timeout: float, watchdog: Watchdog | None = None) -> bytearray:
    """The whole body of a successful GET of a hub API ``url``, with huggingface_hub's
    headers; an error answer is raised as huggingface_hub raises it."""
    refuse_offline()
    headers = hub_headers()
    with wire.get(
        url, headers, connect_timeout=METADATA_TIMEOUT_S, read_timeout=read_timeout
    ) as answer:
        if answer.status >= 400:
            _raise_for(answer, url)
        body = bytearray()
        buffer = memoryview(bytearray(ANSWER_READ_BYTES))
        while n := answer.readinto(buffer):
            body += buffer[:n]
            if watchdog is not None:
                watchdog.passed(n)
    return body


def refuse_offline() -> None:
    """Raise what huggingface_hub's session raises for any request under ``HF_HUB_OFFLINE``:
    every request sent outside that session asks this first."""
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        raise OfflineModeIsEnabled("HF_HUB_OFFLINE is set")


def hub_headers(token: str | bool | None = None) -> dict[str, str]:
    """huggingface_hub's headers for a request: its user agent, and the token it would send
    (``token``; else ``HF_TOKEN`` or the stored login).  Building them reads the token file;
    a pass makes a few requests per model, so they are built again only after
    :data:`HEADERS_FRESH_S` (a login or logout still counts within seconds).  Each caller
    gets its own copy to add to."""
    from huggingface_hub import constants

    # Public (documented) but re-exported lazily, which mypy cannot follow.
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    # What decides the token, besides the file's content: a changed setting counts at once.
    env = os.environ
    key = (
        token,
        env.get("HF_TOKEN"),
        env.get("HUGGING_FACE_HUB_TOKEN"),
        constants.HF_TOKEN_PATH,
        constants.HF_HUB_DISABLE_IMPLICIT_TOKEN,
    )
    now = time.monotonic()
    with _HEADERS_LOCK:
        built = _HEADERS.get(key)
        if built is None or now - built[0] > HEADERS_FRESH_S:
            built = (now, dict(build_hf_headers(token=token)))
            _HEADERS[key] = built
    return dict(built[1])


def _raise_for(answer: wire.Body, url: str) -> None:
    raise_as_read(answer, url)
    status = answer.status
    message = f"{redact(url)}: HTTP {status}"
    raise HubError(Reason.HUB_UNREACHABLE, message, transient=passes(status))


def raise_as_read(answer: wire.Body | wire.Answer, url: str) -> None:
    """Raise what huggingface_hub raises for the error ``answer`` (gated, missing repo or
    revision, its error codes), read from a response rebuilt from what came over the wire;
    returns when it raises nothing, which the caller judges by the status."""
    import httpx2
    from huggingface_hub import hf_raise_for_status

    response = httpx2.Response(
        answer.status,
        headers=list(answer.headers.items()),
        content=answer.read_error(),
        request=httpx2.Request(answer.method, url),
    )
    # huggingface_hub reads every error body as JSON, and fails on one in no UTF encoding
    # (a proxy's or a CDN's page): such an answer is judged by its status.
    with contextlib.suppress(UnicodeDecodeError):
        hf_raise_for_status(response)


def passes(status: int) -> bool:
    """Whether an answer with this error status may change if asked again: overload and
    timeouts on the server's side pass; other statuses will not."""
    return status >= 500 or status in (408, 429)


def is_tag(repo: str, name: str, endpoint: str) -> bool | None:
    """Whether the hub lists ``name`` among ``repo``'s tags (False: among its branches or
    nowhere), or None when it cannot say.

    The answer about a revision does not tell a tag from a branch; the refs listing does.
    """
    try:
        refs = json.loads(_answer(f"{endpoint}/api/models/{repo}/refs", METADATA_TIMEOUT_S))
        tags = refs.get("tags")
        return any(isinstance(t, dict) and t.get("name") == name for t in tags)
    except Exception:  # the record is a courtesy to mirrors; no model fails for it
        return None


def to_hub_error(
    e: Exception, *, repo: str, revision: str, endpoint: str, path: str | None = None
) -> HubError:
    from huggingface_hub import errors

    where = f"{repo}@{revision[:12]}" + (f":{path}" if path else "")
    unreachable = Reason.DOWNLOAD_FAILED if path else Reason.HUB_UNREACHABLE
    if isinstance(e, errors.OfflineModeIsEnabled):
        # Asking again in this process cannot change the answer: no retry.
        return HubError(unreachable, f"{where}: HF_HUB_OFFLINE is set", transient=False)
    if isinstance(e, wire.WireError):
        message = redact(f"{where}: cannot reach {endpoint}: {e}")
        return HubError(unreachable, message, transient=not e.final)
    if isinstance(e, errors.GatedRepoError):
        return HubError(
            Reason.ACCESS_DENIED,
            (
                f"{repo} is gated: request access at {_access_page(e, repo, endpoint)}, then "
                "log in with `hf auth login` or set HF_TOKEN"
            ),
            transient=False,
        )
    if isinstance(e, errors.RepositoryNotFoundError):
        return HubError(
            Reason.REPO_NOT_FOUND,
            (
                f"{repo} was not found on {endpoint} (if it is private, log in with "
                "`hf auth login` or set HF_TOKEN)"
            ),
            transient=False,
        )
    if isinstance(e, errors.RevisionNotFoundError):
        return HubError(
            Reason.REVISION_NOT_FOUND,
            f"revision {revision!r} of {repo} was not found on {endpoint}",
            transient=False,
        )
    if isinstance(e, errors.RemoteEntryNotFoundError):
        return HubError(
            Reason.DOWNLOAD_FAILED, f"{where}: the hub has no such file", transient=False
        )
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        return HubError(
            Reason.ACCESS_DENIED,
            (
                f"{endpoint} refused access to {repo} (HTTP {status}); log in with "
                "`hf auth login` or set HF_TOKEN"
            ),
            transient=False,
        )
    if status == 404:
        return HubError(
            Reason.DOWNLOAD_FAILED if path else Reason.HUB_UNREACHABLE,
            f"{where}: not found on {endpoint} (HTTP 404)",
            transient=False,
        )
    detail = redact(_detail(e))
    if status is not None:
        return HubError(
            Reason.DOWNLOAD_FAILED if path else Reason.HUB_UNREACHABLE,
            f"{where}: HTTP {status}: {detail}",
            transient=passes(status),
        )
    reason = Reason.DOWNLOAD_FAILED if path else Reason.HUB_UNREACHABLE
    message = redact(f"{where}: cannot reach {endpoint}: {type(e).__name__}: {detail}")
    return HubError(reason, message, transient=True)


def _access_page(e: Exception, repo: str, endpoint: str) -> str:
    """Where to ask for access: the page the server's message names, else the endpoint's.

    A mirror is not where access is granted; it names the hub it fills from in its message,
    as the Hub names its own page.
    """
    said = getattr(e, "server_message", None)
    found = _URL_RE.search(said) if isinstance(said, str) else None
    return redact(found.group().rstrip(".,;:)")) if found else f"{endpoint}/{repo}"


def _detail(e: Exception) -> str:
    """The first line of the error, plus what the server said about it, if anything."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    said = getattr(e, "server_message", None)
    if isinstance(said, str) and said.strip() and said.strip() not in text:
        text += f" ({' '.join(said.split())[:300]})"
    return text
