"""Planning: from desired and observed state to an ordered plan, and what the status says.

``planner`` asks each reconciler for its proposals and orders them into one :class:`Plan`;
``status`` derives the report from assessments, ``availability`` answers "I need model X",
``retention_view`` shows the plan's deletions and budget, ``backoff`` spaces out retries of a
failing model, ``nodestate`` rebuilds another machine's observation from its status file.

May: import ``domain`` and ``reconcilers``.  May not: do I/O of any kind, read the clock
(``now`` is passed in), or import an I/O subpackage -- import-linter's purity contract keeps
it so, which is what makes every plan reproducible from a table in a test.
"""
