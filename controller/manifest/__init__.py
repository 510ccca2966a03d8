"""Manifests and lock files: what people write, checked and turned into the desired state.

``loading`` is the first stage of a pass: it reads every manifest of a file or directory, and
the lock file beside each, and either returns what a pass starts from or reports *every*
problem at once as ``file:line: path: message`` (``problems``).  A manifest goes through these
stages: ``yaml_source`` reads each file into a ``document`` (its plain data, the line of every
part, its problems); ``validation`` checks it against the ``schema``, whose single values
``fields`` checks; ``consistency`` checks the files against each other; ``manifest_set`` merges
them; ``desired`` turns the set into the desired state.  ``tokens`` keeps secrets out of
manifests and messages.  ``lockfile`` is the lock file's format and the pure decisions about it
(what is stale, what to re-resolve).

May: read manifest and lock files, import ``domain``.  May not: write anything, talk to the
hub or the state store -- loading changes nothing.
"""
