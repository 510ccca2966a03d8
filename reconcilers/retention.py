"""Retention: delete what modelsync owns and no longer needs, and evict to fit the budget.

Safe by construction, because every deletion is drawn from one set and checked against
another:

- **Owned** snapshot entries are the only candidates: what modelsync downloaded (recorded with
  each download) or was told to adopt (``adopt: true``, ``reconcile adopt``).  Another tool's
  repo, revision, or extra files in the same snapshot are *unmanaged*: reported with their
  size, never deleted.
- **Needed** entries are never deleted: the selected files of every declared model at the
  commit it should be at and at the commit its ref serves (until an update moves it).  A
  suspended or paused model, or one whose commit is unknown (hub unreachable, nothing
  cached), claims its whole repo.
- A model under a live **lease** is never deleted (the deletion is shown as held back).
- An **old revision** outlives the move of the model's ref away from it by a grace period
  (``retention.old_revision_grace``, :data:`OLD_REVISION_GRACE` by default), counted from the
  ref file's mtime: an application that resolved a path in the old snapshot just before the
  switch may still be reading it (``from_pretrained`` resolves config, then weights, over
  seconds, without a lease).  Meanwhile the deletion is shown as held back, with the time it
  becomes due; in the plan that moves the ref it waits for the switch itself.  It waits even
  over budget, and no other model is evicted for the room it frees minutes later.

What goes, and why (each deletion names its rule):

``RemovedFromManifest``
    owned entries of a model no manifest declares (any more, or not with that repo).
``OldRevision`` / ``NotSelected``
    owned entries of a declared model that it moved away from (an update, a new revision;
    once the grace period above has passed) or that its include/exclude no longer select.
``Unused``
    an on-demand model neither used nor downloaded for more than ``max_unused_days``.
``OverBudget``
    when what modelsync manages, plus the plan's transfers, minus the deletions above,
    exceeds the budget: on-demand models used less than ``min_usage_frequency``, least
    valuable first (effective priority, then uses per day, then last use, then name), until
    it fits.  If it cannot fit even then, that is a plan error with the numbers and the
    reason each remaining model could not go.
``Interrupted``
    a deletion the state journal shows was killed halfway: finished first.

An eviction (``Unused``, ``OverBudget``) is remembered in the state store, so an evicted
on-demand model is not fetched again until it is requested: no download/delete flapping.
Models declared ``policy: always`` are never evicted, and neither are ones
``preserve_high_priority`` (critical, high) or ``preserve_recently_downloaded`` (the last
:data:`RECENTLY_DOWNLOADED_DAYS` days) protect, nor any with other work in this plan.

Bytes are counted per blob: a blob two revisions or two models share is freed only by the
deletion that removes its last reference (``apply`` checks again on disk, at deletion time).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from controller.domain import (
    TRANSFER_KINDS,
    Action,
    ActionKind,
    BudgetFit,
    CachedFile,
    DesiredState,
    FileWork,
    Observation,
    OwnedFile,
    Policy,
    Priority,
    Quarantine,
    QuarantinedFile,
    Reason,
    RetentionPolicy,
    Unmanaged,
    Withheld,
    is_commit,
)
from controller.domain.assessment import Assessment
from controller.domain.budget import REMEDY, Budget, numbers
from controller.domain.observed import QUARANTINE_DIR
from controller.domain.selection import selects
from controller.domain.units import human_bytes, plural
from controller.domain.usage import effective_priority, format_rate, uses_per_day
from reconcilers.base import ActionResult, Workspace

RECENTLY_DOWNLOADED_DAYS = 7
NOTHING_TO_EVICT = "modelsync owns no model it could evict"
# The default of retention.old_revision_grace: how long an old revision stays after the
# model's ref moved away from it, for applications that resolved it just before the switch
# and are still loading it.
OLD_REVISION_GRACE = RetentionPolicy().old_revision_grace

# (repo, commit, path): one snapshot entry.
Key = tuple[str, str, str]


@dataclass(frozen=True)
class Cleanup:
    """Retention's proposals: the deletions in order, and what it reports around them."""

    deletions: tuple[Action, ...] = ()
    withheld: tuple[Withheld, ...] = ()  # deletions a live lease or a grace period holds back
    unmanaged: tuple[Unmanaged, ...] = ()
    quarantined: tuple[Quarantine, ...] = ()
    fit: BudgetFit | None = None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def plan(
    desired: DesiredState,
    observed: Observation,
    assessments: tuple[Assessment, ...],
    now: datetime,
    *,
    proposals: Sequence[Action] = (),
    budget: Budget | None = None,
) -> Cleanup:
    """``proposals`` are the other reconcilers' actions (their transfers count against the
    budget, and a model with work planned is not evicted); ``budget`` None: no budget."""
    return _Planner(desired, observed, assessments, now, proposals).run(budget)


def apply(action: Action, workspace: Workspace) -> ActionResult:
    if action.reason is Reason.QUARANTINE_EXPIRED:
        return ActionResult(action, workspace.discard_quarantined(action))
    return ActionResult(action, workspace.delete(action))


# --------------------------------------------------------------------------- the cache


class _Ledger:
    """References to each blob, so that a deletion frees exactly the blobs it unlinks last.

    A copied (not linked) snapshot file is its own blob, keyed by its path.
    """

    def __init__(self, observed: Observation) -> None:
        self.refs: dict[tuple[str, str], int] = defaultdict(int)
        self.sizes: dict[tuple[str, str], int] = {}
        self.present: dict[Key, CachedFile] = {}
        self.freed: set[tuple[str, str]] = set()
        refs, sizes, present = self.refs, self.sizes, self.present
        for repo, cached in observed.cache.items():
            for name, size in cached.blobs.items():
                sizes[(repo, name)] = size
            for commit, files in cached.snapshots.items():
                for path, entry in files.items():
                    present[(repo, commit, path)] = entry
                    # :meth:`blob`, spelled out: this loop runs once per file in the cache.
                    blob = (repo, entry.blob) if entry.blob else (repo, f"{commit}/{path}")
                    refs[blob] += 1
                    if entry.size >= 0 and blob not in sizes:
                        # A link's size is its blob's; blobs/ is listed too, for the orphans.
                        sizes[blob] = entry.size

    @staticmethod
    def blob(key: Key, name: str) -> tuple[str, str]:
        repo, commit, path = key
        return (repo, name) if name else (repo, f"{commit}/{path}")

    def blob_of(self, key: Key) -> tuple[str, str] | None:
        entry = self.present.get(key)
        return None if entry is None else self.blob(key, entry.blob)

    def link(self, key: Key, name: str) -> None:
        """An entry a planned transfer will create: the blob it links stays referenced
        (it is not on disk yet, so it is not ``present`` and no deletion can take it)."""
        if key not in self.present:
            self.refs[self.blob(key, name)] += 1

    def bytes_of(self, blobs: Iterable[tuple[str, str]]) -> int:
        return sum(self.sizes.get(b, 0) for b in set(blobs))

    def would_free(self, keys: Iterable[Key]) -> int:
        """The bytes :meth:`remove` would free, leaving everything in place (a deletion held
        back still says what it frees: not the blobs that other entries keep)."""
        unlinked: dict[tuple[str, str], int] = defaultdict(int)
        for key in set(keys):
            blob = self.blob_of(key)
            if blob is not None:
                unlinked[blob] += 1
        return self.bytes_of(
            b for b, n in unlinked.items() if self.refs.get(b, 0) <= n and b not in self.freed
        )

    def remove(self, keys: Iterable[Key], also: Iterable[tuple[str, str]] = ()) -> int:
        """Unlink ``keys``; the bytes of the blobs nothing refers to any more.

        ``also``: blobs whose entries are already gone (a deletion killed halfway).
        """
        candidates = set(also)
        for key in keys:
            blob = self.blob_of(key)
            if blob is None:
                continue
            del self.present[key]
            self.refs[blob] -= 1
            candidates.add(blob)
        gone = {
            b for b in candidates if self.refs[b] <= 0 and b in self.sizes and b not in self.freed
        }
        self.freed |= gone
        return self.bytes_of(gone)


# --------------------------------------------------------------------------- planning


@dataclass
class _Candidate:
    """An on-demand model that retention may evict."""

    assessment: Assessment
    keys: dict[str, list[Key]]  # by commit: the owned entries an eviction deletes
    downloaded: datetime
    last_used: datetime | None
    uses: float
    priority: Priority

    @property
    def name(self) -> str:
        return self.assessment.model.name

    @property
    def last_active(self) -> datetime:
        return max(self.downloaded, self.last_used or self.downloaded)

    def value(self) -> tuple[int, float, datetime, str]:
        """Least valuable first: lowest priority, then fewest uses, then longest unused
        (never used counts as longest)."""
        never = datetime.min.replace(tzinfo=self.downloaded.tzinfo)
        return (-self.priority.rank, self.uses, self.last_used or never, self.name)


class _Planner:
    def __init__(
        self,
        desired: DesiredState,
        observed: Observation,
        assessments: tuple[Assessment, ...],
        now: datetime,
        proposals: Sequence[Action],
    ) -> None:
        self.observed = observed
        self.assessments = assessments
        self.now = now
        self.proposals = proposals
        self.policy = desired.retention
        self.models = {m.name: m for m in desired.models}
        self.busy = {a.model for a in proposals}
        # Models whose ref the apply of this plan moves: after their work, before deletions.
        self.switching = {
            a.model.name
            for a in assessments
            if a.model.name in self.busy
            and a.commit is not None
            and a.served_commit != a.commit
            and not is_commit(a.model.revision)
        }
        self.ledger = _Ledger(observed)
        for action in proposals:
            # After an update, the new revision links the blobs it shares with the old one:
            # deleting the old revision in the same plan must not count them as freed.
            if action.kind in TRANSFER_KINDS:
                for f in action.files:
                    self.ledger.link((action.repo, action.commit, f.path), f.etag)
        # entry -> the models needing it: a tuple, as nearly every entry has one (a set each
        # was a fifth of a 1,000-model plan's peak memory)
        self.needed: dict[Key, tuple[str, ...]] = {}
        self.needs: dict[str, list[Key]] = defaultdict(list)  # model -> the entries it needs
        self.claimed_repos: set[str] = set()  # repos nothing may be deleted from
        self.current: dict[str, set[str]] = {}  # model -> the commits it keeps
        self._find_needed()
        self.owned = {(o.repo, o.commit, o.path): o for o in observed.owned}
        self._adopt_declared()
        self.deletions: list[Action] = []
        self.withheld: list[Withheld] = []
        self.freed = 0

    # ----------------------------------------------------------------- what must stay

    def _find_needed(self) -> None:
        updating = {a.model for a in self.proposals if a.kind is ActionKind.UPDATE}
        for a in self.assessments:
            model = a.model
            if model.suspend or a.commit is None:
                # Left alone, or its commit is unknown: nothing of its repo is safe to judge.
                self.claimed_repos.add(model.repo)
                continue
            if a.retired:
                continue  # evicted: it needs nothing until it is requested again
            commits = {a.commit}
            if a.served_commit is not None and model.name not in updating:
                commits.add(a.served_commit)  # what applications load until the ref moves
            self.current[model.name] = commits
            cached = self.observed.repo(model.repo)
            for commit in sorted(commits):
                paths = {
                    p for p in cached.files_at(commit) if selects(p, model.include, model.exclude)
                }
                if commit == a.commit:
                    # Missing files too: a download may be putting them back right now, and
                    # nothing (not even finishing an interrupted deletion) may take them.
                    paths |= {f.path for f in a.files}
                needs = self.needs[model.name]
                for path in sorted(paths):
                    key = (model.repo, commit, path)
                    self.needed[key] = (*self.needed.get(key, ()), model.name)
                    needs.append(key)

    def _adopt_declared(self) -> None:
        """``adopt: true`` owns the model's files from the first plan on (an apply records
        it in the state store, so the ownership outlives the manifest entry)."""
        for a in self.assessments:
            if not a.model.adopt or a.model.name not in self.current:
                continue
            for key in self.needs[a.model.name]:
                if key in self.ledger.present and key not in self.owned:
                    repo, commit, path = key
                    self.owned[key] = OwnedFile(repo, commit, path, a.model.name, True, self.now)

    def _is_needed(self, key: Key, *, besides: str | None = None) -> bool:
        """Whether a model other than ``besides`` needs ``key`` (asked of every cached file,
        so it builds no set)."""
        if key[0] in self.claimed_repos:
            return True
        needers = self.needed.get(key)
        if not needers:
            return False
        return len(needers) > 1 or besides not in needers

    # ----------------------------------------------------------------- the rules

    def run(self, budget: Budget | None) -> Cleanup:
        # What the cache holds as observed, read from the ledger before any deletion below
        # unlinks entries from it: one ledger per plan serves both.
        mine, others = self._mine()
        on_disk, unmanaged = self._managed_bytes(mine), self._unmanaged(mine, others)
        # Quarantined bytes take disk space like any blob (they are modelsync's own).
        on_disk += sum(f.size for c in self.observed.cache.values() for f in c.quarantined)
        covered = self._finish_interrupted()
        self._unneeded(covered)
        quarantined = self._expired_quarantine()
        candidates, blocked = self._candidates()
        for c in sorted(candidates, key=_Candidate.value):
            if self.now - c.last_active > timedelta(days=self.policy.max_unused_days):
                self._evict(c, Reason.UNUSED, self._unused_message(c))
        errors: list[str] = []
        warnings: list[str] = []
        fit = None
        if budget is not None:
            # What old revisions free once their grace period ends, minutes from now: no
            # other model is evicted to make room that they will make themselves.
            soon = sum(w.action.bytes for w in self.withheld if w.reason is Reason.GRACE_PERIOD)
            fit = self._fit(budget, on_disk)
            for c in sorted(candidates, key=_Candidate.value):
                if replace(fit, freed=fit.freed + soon).fits:
                    break
                if c.name in self._evicted or c.uses >= self.policy.min_usage_frequency:
                    continue
                self._evict(c, Reason.OVER_BUDGET, self._over_budget_message(c))
                fit = self._fit(budget, on_disk)
            if not fit.fits and replace(fit, freed=fit.freed + soon).fits:
                warnings.append(
                    f"over the disk budget until the grace period of old revisions ends: "
                    f"{numbers(fit)}; {self._waiting()}"
                )
            elif not fit.fits:
                errors.append(self._does_not_fit(fit, candidates, blocked))
        return Cleanup(
            deletions=tuple(self.deletions),
            withheld=tuple(self.withheld),
            unmanaged=unmanaged,
            quarantined=quarantined,
            fit=fit,
            errors=tuple(errors),
            warnings=tuple(warnings),
        )

    def _fit(self, budget: Budget, on_disk: int) -> BudgetFit:
        return BudgetFit(
            budget=budget.bytes,
            source=budget.source,
            on_disk=on_disk,
            transfers=sum(a.bytes for a in self.proposals if a.kind in TRANSFER_KINDS),
            freed=self.freed,
        )

    def _finish_interrupted(self) -> set[tuple[str, str, str]]:
        """Journal entries left open by a deletion killed halfway: finish them first."""
        covered = set()
        for record in self.observed.pending_deletions:
            covered.add((record.model, record.repo, record.commit))
            files = tuple(
                f for f in record.files if not self._is_needed((record.repo, record.commit, f.path))
            )
            keys = [(record.repo, record.commit, f.path) for f in files]
            message = (
                f"finishing the deletion killed at {record.started_at:%Y-%m-%d %H:%M:%S} UTC "
                f"({record.reason.value}: {record.message})"
            )
            also = [(record.repo, f.etag) for f in files if f.etag]
            self._delete(
                record.model,
                record.repo,
                record.commit,
                files,
                keys,
                Reason.INTERRUPTED,
                message,
                also=also,
            )
        return covered

    def _unneeded(self, covered: set[tuple[str, str, str]]) -> None:
        """Owned entries no declared model needs: removed, old revisions, deselected."""
        groups: dict[tuple[str, str, str], list[Key]] = defaultdict(list)
        # Sorted once found: nearly every owned entry is needed, and sorting them all first
        # was most of this rule's cost on a large cache.
        unneeded = sorted(
            (key, owner.model)
            for key, owner in self.owned.items()
            if key in self.ledger.present and not self._is_needed(key)
        )
        for key, model in unneeded:
            groups[(model, key[0], key[1])].append(key)
        for (name, repo, commit), keys in sorted(groups.items(), key=lambda g: g[0][1:] + g[0][:1]):
            if (name, repo, commit) in covered:
                continue
            reason, message = self._why_unneeded(name, repo, commit, keys)
            files = self._files(keys)
            grace = self._grace(name) if reason is Reason.OLD_REVISION else None
            self._delete(name, repo, commit, files, keys, reason, message, grace=grace)

    def _expired_quarantine(self) -> tuple[Quarantine, ...]:
        """Delete damaged bytes once ``quarantine_grace`` has passed since they were moved
        aside; until then they stay for whoever investigates.  A suspended model's repo is
        left alone.  Returns what each repo's quarantine holds, as observed."""
        grace = self.policy.quarantine_grace
        suspended = {m.repo for m in self.models.values() if m.suspend}
        found = []
        for repo, cached in sorted(self.observed.cache.items()):
            if not cached.quarantined:
                continue
            expired = tuple(f for f in cached.quarantined if self.now >= f.since + grace)
            total = sum(f.size for f in cached.quarantined)
            found.append(Quarantine(repo, len(cached.quarantined), total, len(expired)))
            if expired and repo not in suspended:
                self._discard(repo, expired)
        return tuple(found)

    def _discard(self, repo: str, expired: tuple[QuarantinedFile, ...]) -> None:
        frees = sum(f.size for f in expired)
        owners = sorted(m.name for m in self.models.values() if m.repo == repo)
        oldest = min(f.since for f in expired)
        self.freed += frees
        self.deletions.append(
            Action(
                kind=ActionKind.DELETE,
                # The model that declares the repo, so apply takes it with that model's work;
                # the repo itself when no manifest declares it any more.
                model=owners[0] if owners else repo,
                repo=repo,
                revision="",
                commit="",  # in no snapshot: quarantined bytes belong to no commit
                files=tuple(
                    FileWork(f"{QUARANTINE_DIR}/{f.name}", f.size, f.name) for f in expired
                ),
                bytes=frees,
                reason=Reason.QUARANTINE_EXPIRED,
                message=(
                    f"{plural(len(expired), 'damaged file')} quarantined since "
                    f"{oldest:%Y-%m-%d %H:%M:%S} UTC, over retention.quarantine_grace "
                    f"{_duration(self.policy.quarantine_grace)}; frees {human_bytes(frees)}"
                ),
            )
        )

    def _why_unneeded(
        self, name: str, repo: str, commit: str, keys: list[Key]
    ) -> tuple[Reason, str]:
        what = plural(len(keys), "file")
        model = self.models.get(name)
        if model is None:
            return Reason.REMOVED_FROM_MANIFEST, f"no manifest declares {name} any more; {what}"
        if model.repo != repo:
            return Reason.REMOVED_FROM_MANIFEST, f"{name} now uses {model.repo}; {what} of {repo}"
        evicted = self.observed.evicted.get(name)
        if name not in self.current and evicted is not None:
            # What an eviction left because another model needed it then, or a kill cut short.
            when = f"{evicted.at:%Y-%m-%d}"
            return (
                evicted.reason,
                f"{name} was evicted {when} ({evicted.reason.value}); {what} left",
            )
        kept = self.current.get(name, set())
        if commit not in kept:
            to = ", ".join(sorted(c[:12] for c in kept)) or "nothing"
            return (
                Reason.OLD_REVISION,
                f"{name} moved from {commit[:12]} to {to}; {what} of the old revision "
                "(blobs the new one shares stay)",
            )
        return (
            Reason.NOT_SELECTED,
            f"include/exclude of {name} no longer select {what} at {commit[:12]}",
        )

    def _grace(self, name: str) -> str | None:
        """Why an old revision of ``name`` must wait still, or None once it may go.

        Only a ref switch is timed: a model pinned to a commit has no ref, and the
        applications resolving its old commit name that commit themselves.
        """
        model = self.models[name]
        grace = self.policy.old_revision_grace
        why = "for applications that resolved it before the switch"
        if name in self.switching:
            # The ref moves during this very apply: the time to count from is not known yet.
            return f"kept for {_duration(grace)} after refs/{model.revision} moves, {why}"
        moved = self.observed.repo(model.repo).ref_times.get(model.revision)
        if moved is None or self.now >= moved + grace:
            return None
        return f"kept until {_clock_time(moved + grace, self.now)} {why}"

    def _candidates(self) -> tuple[list[_Candidate], dict[str, str]]:
        """On-demand models retention could evict, and why each other model cannot be."""
        candidates: list[_Candidate] = []
        blocked: dict[str, str] = {}
        for a in self.assessments:
            model = a.model
            if a.model.name not in self.current or a.absent:
                continue
            if model.policy is Policy.ALWAYS:
                blocked[model.name] = "policy always"
                continue
            uses = uses_per_day(self.observed.usage, model.name)
            priority = effective_priority(model, uses)
            keys: dict[str, list[Key]] = {}
            foreign = 0
            for key in sorted(self.needs[model.name]):
                if key not in self.ledger.present or self._is_needed(key, besides=model.name):
                    continue  # absent, or another declared model keeps it anyway
                if key in self.owned:
                    keys.setdefault(key[1], []).append(key)
                else:
                    foreign += 1
            owned_since = [self.owned[k].since for ks in keys.values() for k in ks]
            why = self._protected(a, priority, foreign, owned_since)
            if why:
                blocked[model.name] = why
                continue
            used = self.observed.usage.get(model.name)
            candidates.append(
                _Candidate(
                    assessment=a,
                    keys=keys,
                    # When its last file arrived (downloaded, or adopted): the model was
                    # complete from then on.
                    downloaded=max(owned_since),
                    last_used=used.last_used if used else None,
                    uses=uses,
                    priority=priority,
                )
            )
        return candidates, blocked

    def _protected(
        self, a: Assessment, priority: Priority, foreign: int, owned_since: list[datetime]
    ) -> str:
        if a.requested:
            return "requested"
        if a.model.name in self.busy:
            return "has other work in this plan"
        if foreign:
            return (
                f"{plural(foreign, 'file')} not downloaded by modelsync "
                "(set `adopt: true` or run `reconcile adopt` to let retention manage it)"
            )
        if not owned_since:
            return "nothing of its own to delete"
        if self.policy.preserve_high_priority and priority.rank <= Priority.HIGH.rank:
            return f"priority {priority.value} (preserve_high_priority)"
        recent = max(owned_since)
        if self.policy.preserve_recently_downloaded and self.now - recent < timedelta(
            days=RECENTLY_DOWNLOADED_DAYS
        ):
            return f"arrived {_ago(self.now, recent)} (preserve_recently_downloaded)"
        return ""

    @property
    def _evicted(self) -> set[str]:
        """Models evicted, or whose eviction a lease holds back (not to be tried again).  An
        old revision waiting out its grace period says nothing about the model's eviction."""
        return {
            a.model for a in self.deletions if a.reason in (Reason.UNUSED, Reason.OVER_BUDGET)
        } | {w.action.model for w in self.withheld if w.reason is Reason.IN_USE}

    def _evict(self, c: _Candidate, reason: Reason, message: str) -> None:
        for commit, keys in sorted(c.keys.items()):
            repo = c.assessment.model.repo
            self._delete(c.name, repo, commit, self._files(keys), keys, reason, message)

    # ----------------------------------------------------------------- one deletion

    def _files(self, keys: list[Key]) -> tuple[FileWork, ...]:
        files = []
        for key in keys:
            entry = self.ledger.present[key]
            files.append(FileWork(key[2], max(entry.size, 0), entry.blob))
        return tuple(sorted(files, key=lambda f: f.path))

    def _delete(
        self,
        name: str,
        repo: str,
        commit: str,
        files: tuple[FileWork, ...],
        keys: list[Key],
        reason: Reason,
        message: str,
        *,
        also: Iterable[tuple[str, str]] = (),
        grace: str | None = None,
    ) -> None:
        """Plan one deletion, or hold it back while a lease holds the model or while
        ``grace`` (why an old revision must wait still) is given."""
        leases = self.observed.leases.get(name, ())
        held: tuple[Reason, str] | None = None
        if leases:
            holders = ", ".join(sorted({lease.holder for lease in leases}))
            held = (Reason.IN_USE, f"in use ({holders}); the deletion waits until the lease ends")
        elif grace is not None:
            held = (Reason.GRACE_PERIOD, grace)
        if held is not None:
            # Not counted as freed: for the budget, the files stay.
            frees = self.ledger.would_free(keys)
            action = self._action(name, repo, commit, files, frees, reason, message)
            self.withheld.append(Withheld(action, *held))
            return
        frees = self.ledger.remove(keys, also)
        self.freed += frees
        self.deletions.append(self._action(name, repo, commit, files, frees, reason, message))

    def _action(
        self,
        name: str,
        repo: str,
        commit: str,
        files: tuple[FileWork, ...],
        frees: int,
        reason: Reason,
        message: str,
    ) -> Action:
        return Action(
            kind=ActionKind.DELETE,
            model=name,
            repo=repo,
            # A deletion never points a ref; it names the commit it removes.
            revision=commit,
            commit=commit,
            files=files,
            bytes=frees,
            reason=reason,
            message=f"{message}; frees {human_bytes(frees)}",
        )

    # ----------------------------------------------------------------- messages

    def _unused_message(self, c: _Candidate) -> str:
        days = self.policy.max_unused_days
        if c.last_used is None:
            since = f"downloaded {_ago(self.now, c.downloaded)}, not used since"
        else:
            since = f"last used {_ago(self.now, c.last_used)}"
        return f"on-demand, {since} (max_unused_days {days}); fetched again when requested"

    def _over_budget_message(self, c: _Candidate) -> str:
        last = "never used" if c.last_used is None else f"last used {_ago(self.now, c.last_used)}"
        return (
            f"over the disk budget: the least valuable on-demand model (priority "
            f"{c.priority.value}, {format_rate(c.uses)} uses/day, {last}); fetched again "
            "when requested"
        )

    def _does_not_fit(
        self, fit: BudgetFit, candidates: list[_Candidate], blocked: Mapping[str, str]
    ) -> str:
        evicted = self._evicted
        why = dict(blocked)
        for w in self.withheld:
            if w.reason is Reason.IN_USE:
                why[w.action.model] = w.message.split(";")[0]
        for c in candidates:
            if c.name not in evicted and c.name not in why:
                why[c.name] = (
                    f"used {format_rate(c.uses)}/day, at least min_usage_frequency "
                    f"{format_rate(self.policy.min_usage_frequency)}"
                )
        kept = "; ".join(f"{name} ({reason})" for name, reason in sorted(why.items()))
        waiting = self._waiting()
        return (
            f"the plan does not fit the disk budget: {numbers(fit)}; not even after every "
            f"allowed eviction ({kept or NOTHING_TO_EVICT}){'; ' if waiting else ''}{waiting}; "
            f"{REMEDY}"
        )

    def _waiting(self) -> str:
        """Old revisions the budget would have had deleted: they wait all the same (an
        application may be reading them), and the plan says what they will free."""
        waiting = [w for w in self.withheld if w.reason is Reason.GRACE_PERIOD]
        if not waiting:
            return ""
        names = ", ".join(sorted({w.action.model for w in waiting}))
        frees = human_bytes(sum(w.action.bytes for w in waiting))
        return (
            f"old revisions of {names} ({frees}) stay until their grace period ends "
            "(retention.old_revision_grace)"
        )

    # ----------------------------------------------------------------- reporting

    def _mine(self) -> tuple[set[tuple[str, str]], list[Key]]:
        """The blobs of entries modelsync owns or needs (each blob once), and the entries it
        neither owns nor needs (one pass over every cached file sorts both)."""
        mine: set[tuple[str, str]] = set()
        others: list[Key] = []
        for key, entry in self.ledger.present.items():
            if key in self.owned or self._is_needed(key):
                mine.add(self.ledger.blob(key, entry.blob))
            else:
                others.append(key)
        return mine, others

    def _managed_bytes(self, mine: set[tuple[str, str]]) -> int:
        """What modelsync keeps on disk now: ``mine``, and the blobs an interrupted deletion
        has yet to remove."""
        blobs = set(mine)
        for record in self.observed.pending_deletions:
            blobs |= {(record.repo, f.etag) for f in record.files if f.etag}
        return self.ledger.bytes_of(blobs)

    def _unmanaged(self, mine: set[tuple[str, str]], others: list[Key]) -> tuple[Unmanaged, ...]:
        """``others``, the entries nobody in the manifests needs and modelsync never owned:
        other tools'.  A blob one of ``mine`` links too is not counted as theirs."""
        theirs: dict[str, set[tuple[str, str]]] = defaultdict(set)
        commits: dict[str, set[str]] = defaultdict(set)
        for key in others:
            blob = self.ledger.blob_of(key)
            if blob is not None and blob not in mine:
                theirs[key[0]].add(blob)
            commits[key[0]].add(key[1])
        return tuple(
            Unmanaged(repo=repo, bytes=self.ledger.bytes_of(theirs[repo]), commits=tuple(sorted(c)))
            for repo, c in sorted(commits.items())
        )


def _duration(span: timedelta) -> str:
    """'10 minutes', '1 hour', '90 seconds': the largest unit that divides it."""
    seconds = span.total_seconds()
    if not seconds or not seconds.is_integer():
        return f"{seconds:g} seconds"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            return plural(int(seconds) // size, unit)
    raise AssertionError("unreachable")


def _clock_time(at: datetime, now: datetime) -> str:
    """'12:10:00 UTC', with the date too when it is not today's."""
    at, now = at.astimezone(timezone.utc), now.astimezone(timezone.utc)
    return f"{at:%H:%M:%S} UTC" if at.date() == now.date() else f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _ago(now: datetime, then: datetime) -> str:
    days = (now - then).days
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''} ago"
    return "today"
