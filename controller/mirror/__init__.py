"""``reconcile serve``: a cache directory served read-only over the Hugging Face hub protocol.

Nodes point their ``endpoint`` at it and huggingface_hub works against it unchanged: revision
and tree metadata, file downloads with ranges, HEAD with the headers ``hf_hub_download``
expects.  ``repo_view`` reads a repo of the cache as the hub describes one, ``git_objects``
derives the git and LFS ids the hub reports, ``documents`` renders the hub's JSON,
``ranges`` reads ``Range`` headers, ``handler`` answers one connection's requests and
``server`` runs the standard library's threaded HTTP server around it.

May: read a cache directory, serve HTTP.  May not: write to the cache or hold test hooks.
"""
