"""Manifests and lock files: what people write, checked and turned into the desired state.

``loader`` reads every manifest of a file or directory (YAML with line numbers), validates it
against the schema, and reports *every* problem at once as ``file:line: path: message``;
``lockfile`` is the lock file's format and the pure decisions about it (what is stale, what to
re-resolve).

May: read manifest and lock files, import ``domain``.  May not: write anything, talk to the
hub or the state store -- loading is the first stage of a pass and changes nothing.
"""
