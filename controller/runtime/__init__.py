"""The long-running controller (``reconcile --watch``): passes on triggers, at most one at a time.

``loop`` is the loop: a trigger queue that any event only *asks* for a pass through, backoff of
failing models, pause and resume; ``schedule`` puts resyncs, update checks and health checks in
the queue; ``manifest_watch`` turns manifest edits into reloads; ``claim`` keeps one
controller per cache; ``process`` is the process around it all (signals, the HTTP server).

May: use every layer below it.  May not: parse the command line or print for people.
"""
