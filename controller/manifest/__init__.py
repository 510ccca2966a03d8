"""Manifests and lock files: what people write, checked and turned into the desired state.

``loader`` reads every manifest of a file or directory and reports *every* problem at once as
``file:line: path: message`` (``problems``), through these stages: ``yaml_source`` reads each
file into a ``document`` (its plain data, the line of every part, its problems); ``validation``
checks it against the ``schema``, whose single values ``fields`` checks; ``consistency`` checks
the files against each other; ``manifest_set`` merges them.  ``tokens`` keeps secrets out of
manifests and messages; ``desired`` turns a manifest set into the desired state.

``lockfile`` is the lock file's format and the pure decisions about it (what is stale, what to
re-resolve); ``lock_files`` loads a pass's input: the manifests, the lock files beside them, and
what those pin.

May: read manifest and lock files, import ``domain``.  May not: write anything, talk to the
hub or the state store -- loading is the first stage of a pass and changes nothing.
"""
