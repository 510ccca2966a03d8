"""The request API: what applications ask of modelsync, in Python and over HTTP.

``client`` is the public SDK (:class:`~controller.api.client.ModelAvailability`: request a
model, record its use, take a lease, read the status); ``app`` is the HTTP API over it (a
FastAPI app: probes, metrics, the request API, the event stream) and ``listener`` serves it
with uvicorn; ``events`` is the event stream (phase changes, progress) and its SSE form;
``metrics`` the Prometheus numbers; ``discovery`` finds the running controller.

May: use ``engine`` and below.  May not: import ``runtime`` -- the controller hands itself to
the HTTP app, so the app stays testable without a loop.
"""
