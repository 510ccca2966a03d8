"""The hub: resolving revisions, and the resumable, verified transfer of one file.

``revisions`` asks the hub what a revision points to (with huggingface_hub's headers,
settings and reading of error answers, so endpoint, auth and mirrors behave as they do for
applications) and maps its errors to reasons, with tokens redacted; ``transfer`` downloads one
file into the cache layout, resuming partials, hashing while it writes, retrying with backoff,
and publishing only verified blobs; ``wire`` makes the GETs and HEADs, on connections kept
between them, reading a body into one reused buffer, and ``watchdog`` cuts a transfer that
trickles below a speed floor so that it resumes on a new connection.  A large file comes as
byte ranges over several connections (``ranged``, spans in ``ranges``), drawn from the
process's budget of connections (``connections``); its one stable partial (``partial``) and the
sidecar that says what it holds (``sidecar``) survive a ``kill -9``; ``retry`` paces attempts.

May: make HTTP requests, write blobs and partials into the cache.  May not: decide what to
fetch (the plan does) or touch the state store.
"""
