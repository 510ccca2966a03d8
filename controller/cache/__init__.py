"""The Hugging Face cache on disk: its layout, reading it, checking files, deleting from it.

``layout`` knows ``models--org--name/{blobs,snapshots,refs}`` and reads it without change;
``hashing`` computes a blob's digest, ``formats`` checks safetensors headers, ``inspection``
checks one file against its digest and records the verdict; ``deletion`` removes owned files
in an order that leaves a valid cache at every instant; ``blob_lock`` is huggingface_hub's
per-blob lock, so an application's download and ours never interleave on one file;
``partial_claim`` extends that across the nodes of a shared file system, where the lock may not
hold.

May: read the cache, write and delete in it (deletion, inspection's quarantine), use the state
store for records and journals.  May not: talk to the hub (that is ``hub``).
"""
