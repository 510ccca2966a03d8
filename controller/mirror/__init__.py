"""``reconcile serve``: a cache directory served read-only over the Hugging Face hub protocol.

Nodes point their ``endpoint`` at it and huggingface_hub works against it unchanged: revision
and tree metadata, file downloads with ranges, HEAD with the headers ``hf_hub_download``
expects.  ``repo_view`` reads a repo of the cache as the hub describes one, ``git_objects``
derives the git and LFS ids the hub reports, ``documents`` renders the hub's JSON,
``ranges`` reads ``Range`` headers, ``handler`` answers one connection's requests and
``server`` runs the standard library's threaded HTTP server around it.

With an upstream it is a pull-through mirror: ``pull_through`` fills misses from it,
``upstream`` asks it about revisions and access, ``admission`` decides who may read a repo,
``fills`` coalesces concurrent downloads of a blob and serves them as they grow, ``budget``
keeps the directory within its byte budget, ``metrics`` counts for Prometheus, ``health``
tells ``/healthz`` what its traffic has shown of the upstream.

May: read a cache directory, serve HTTP; with an upstream, fill and evict in that directory
(through the hub's transfer).  May not: hold test hooks.
"""
