"""``reconcile serve``: a cache directory served read-only over the Hugging Face hub protocol.

Nodes point their ``endpoint`` at it and huggingface_hub works against it unchanged: revision
and tree metadata, file downloads with ranges, HEAD with the headers ``hf_hub_download``
expects.  The standard library's threaded HTTP server carries it.

May: read a cache directory, serve HTTP.  May not: write to the cache or hold test hooks.
"""
