"""The hub's last answers: what each ``repo@revision`` contained when the hub was last asked.

``--offline`` and a hub that cannot be reached plan against these; a recalled answer is
always marked stale, so nothing mistakes it for news, and carries the time it was learned.

There is one answer per ``repo@revision``, and every writer passes the time the answer was
learned: a newer answer replaces an older one, never the other way round, so a slow writer
that asked the hub before another cannot put the older news back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from controller.domain import RemoteFile, RemoteRevision
from controller.store.columns import parse_timestamp, timestamp
from controller.store.connection import Database


def _files_to_json(files: Sequence[RemoteFile]) -> str:
    return json.dumps(
        [{"path": f.path, "size": f.size, "blob_id": f.blob_id, "sha256": f.sha256} for f in files],
        separators=(",", ":"),
    )


def _files_from_json(text: str) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(path=d["path"], size=d["size"], blob_id=d["blob_id"], sha256=d["sha256"])
        for d in json.loads(text)
    )


# Timestamps are fixed-width UTC text, so text order is time order.
_REMEMBER = """
    INSERT INTO remote_revisions (repo, revision, commit_sha, files_json, observed_at)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (repo, revision) DO UPDATE SET
        commit_sha = excluded.commit_sha, files_json = excluded.files_json,
        observed_at = excluded.observed_at
    WHERE excluded.observed_at >= remote_revisions.observed_at
"""


_KNOWN = "SELECT repo, revision, commit_sha, json_array_length(files_json) FROM remote_revisions"
_RENEW = """
    UPDATE remote_revisions SET observed_at = ?
    WHERE repo = ? AND revision = ? AND observed_at <= ?
"""


def _check_news(rev: RemoteRevision) -> None:
    if rev.stale:
        # Re-remembering a recalled revision would pass old news off as fresh.
        raise ValueError(f"{rev.repo}@{rev.revision} is stale; only remember hub answers")


def _remember_params(rev: RemoteRevision, observed_at: datetime) -> tuple[str, ...]:
    _check_news(rev)
    return (rev.repo, rev.revision, rev.commit, _files_to_json(rev.files), timestamp(observed_at))


class RemoteRevisions(Database):
    """The ``remote_revisions`` table."""

    def remember_remote(self, rev: RemoteRevision, observed_at: datetime) -> bool:
        """Keep what the hub said a revision contains, learned at ``observed_at``, for when
        it cannot be asked; False when a newer answer was already remembered."""
        with self._write() as conn:
            return conn.execute(_REMEMBER, _remember_params(rev, observed_at)).rowcount > 0

    def remember_remotes(self, revs: Sequence[RemoteRevision], observed_at: datetime) -> None:
        """:meth:`remember_remote` for every answer of a pass, in one transaction: a commit
        per answer made remembering a thousand models' answers a measurable part of a pass.

        An answer naming the commit already remembered, with as many files, is the answer
        already remembered (a commit's files never change; a lock's entries list fewer):
        only its time is renewed.  Encoding every file of every answer again was most of
        the cost of remembering a pass's answers.
        """
        if not revs:
            return
        for rev in revs:
            _check_news(rev)
        when = timestamp(observed_at)
        with self._write() as conn:
            known = {
                (repo, revision): (commit, count)
                for repo, revision, commit, count in conn.execute(_KNOWN).fetchall()
            }
            renewed, changed = [], []
            for rev in revs:
                if known.get((rev.repo, rev.revision)) == (rev.commit, len(rev.files)):
                    renewed.append((when, rev.repo, rev.revision, when))
                else:
                    changed.append(_remember_params(rev, observed_at))
            conn.executemany(_RENEW, renewed)
            conn.executemany(_REMEMBER, changed)

    def recall_remote(self, repo: str, revision: str) -> RemoteRevision | None:
        """The last remembered answer for ``repo@revision``, marked stale, if any."""
        rows = self._select(
            "SELECT * FROM remote_revisions WHERE repo = ? AND revision = ?", (repo, revision)
        )
        if not rows:
            return None
        row = rows[0]
        return RemoteRevision(
            repo=row["repo"],
            revision=row["revision"],
            commit=row["commit_sha"],
            files=_files_from_json(row["files_json"]),
            stale=True,
            learned_at=parse_timestamp(row["observed_at"]),
        )
