"""Batch identity resolution: which member does each event of a batch belong to?

The whole batch is resolved inside the caller's transaction with two reads (the aliases it
mentions, then the members those name) and a handful of set-based writes, whatever the
batch size. Rules, applied event by event in batch order:

- the candidates of an event are the member named by its `member.id` (created when new)
  and the members its known aliases point to;
- no candidate: a new member is created;
- several candidates: they are one person. The oldest member (lowest creation order)
  survives, the others are merged into it (`member.merged` is appended to both streams), and
  their aliases, push subscriptions and later events go to the survivor;
- aliases not seen before are linked to the chosen member; when that member existed before
  the event, a `member.identified` event records the link.

Every event of the batch goes to the member that survives the batch. Resolution has three
steps, so that all the Python work (decisions, data keys, encryption) happens before the
caller's transaction opens:

- `plan` reads (one query for aliases and members, one for data keys) and decides, outside
  any transaction;
- `lock`, first thing in the transaction, locks the existing members the plan read (the
  ones it merges away `FOR UPDATE`, then the others `FOR KEY SHARE`, each in member id
  order) and checks they are as read: a member merged or erased meanwhile raises
  `IdentityChanged` (plan again; the new plan sees the winner's rows), and claims naming an
  erased member raise `ErasedMembers`. While the locks are held, no merge or erasure can
  change those members, so the batch's aliases and merges are decided on the state they
  are written over;
- `write` stores the decisions, after the events are appended.

`resolve` is `plan` then `lock`. Concurrent batches that race on the same new alias or
member id make one transaction fail with a unique violation; the caller plans again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from journeyman.engine.identity.crypto import DataKey, Keyring, load_data_keys
from journeyman.event_store import NewEvent

from .aliases import USER_ID, Alias, Claim
from .member_ids import new_member_id

_NEW_SEQ_BASE = 1 << 62
_LOOKUP = """
WITH a AS MATERIALIZED (
    SELECT a.kind, a.blind, a.member_id
    FROM unnest($1::text[], $2::bytea[]) AS q(kind, blind)
    JOIN member_aliases a ON a.kind = q.kind AND a.blind = q.blind
)
SELECT kind, blind, member_id, NULL::bigint AS seq, NULL::text AS merged_into FROM a
UNION ALL
SELECT NULL, NULL, m.member_id, m.seq, m.merged_into
FROM (SELECT member_id FROM a UNION SELECT unnest($3::text[])) AS w
JOIN members m ON m.member_id = w.member_id
UNION ALL
SELECT '$store_id', NULL, m.member_id, m.seq, m.merged_into
FROM members m WHERE m.member_id = ANY($4::text[])
"""


_LOCK = """
SELECT member_id, merged_into, erased_at FROM members
WHERE member_id = ANY($1::text[]) ORDER BY member_id FOR {mode}
"""
# Batches share the members they read (FOR KEY SHARE: concurrent batches naming the same
# member do not wait for each other); a merge and an erasure take FOR UPDATE, which waits
# for every batch holding the member and makes later ones wait.
_LOCK_SHARED = _LOCK.format(mode="KEY SHARE")
_LOCK_EXCLUSIVE = _LOCK.format(mode="UPDATE")


class IdentityChanged(Exception):
    """A member the batch read was merged or erased by a concurrent transaction before the
    batch locked it: retry the whole transaction."""


class ErasedMembers(Exception):
    """Claims of the batch name an erased member (by id or through an alias)."""

    def __init__(self, claims: list[int], member_ids: set[str]) -> None:
        super().__init__(f"claims {claims} name erased members")
        self.claims = claims
        self.member_ids = member_ids


@dataclass
class Resolution:
    member_ids: list[str]
    """The member of each claim, in claim order (always a surviving member)."""
    system_events: dict[int, list[tuple[str, NewEvent]]] = field(default_factory=dict)
    """Events the resolution itself produced, keyed by the index of the claim that caused
    them: `(member_id, event)` pairs to append just before that claim's event."""
    created: list[str] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)
    """`(merged, survivor)` pairs."""
    keys: dict[str, DataKey] = field(default_factory=dict)
    """The data keys of the members that need one (new aliases, push subscriptions,
    merges, claims with `seal`), created by `write` where missing."""
    _plan: _Plan | None = field(default=None, repr=False)

    @property
    def streams(self) -> list[str]:
        """The member ids whose streams the batch appends to (claims and merge events)."""
        found = dict.fromkeys(self.member_ids)
        for pairs in self.system_events.values():
            found.update(dict.fromkeys(m for m, _ in pairs))
        return list(found)


@dataclass
class _Plan:
    """What `write` has to store."""

    members: _Members
    owner: dict[tuple[str, bytes], str]
    new_aliases: dict[tuple[str, bytes], Alias] = field(default_factory=dict)
    merges: list[tuple[int, str]] = field(default_factory=list)
    keys: dict[str, DataKey] = field(default_factory=dict)
    new_keys: list[tuple[str, bytes]] = field(default_factory=list)
    push: dict[bytes, tuple[str, str, bytes]] = field(default_factory=dict)
    alias_rows: tuple[list, list, list, list] = field(default_factory=lambda: ([], [], [], []))
    """New aliases as columns (kind, blind, member id, sealed value), encrypted by `plan`."""
    named: list[list[str]] = field(default_factory=list)
    """The members each claim named and the one it resolved to (for `lock`)."""


class _Members:
    """Union-find over member ids with creation order (`seq`) as the survivor rule."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.seq: dict[str, int] = {}
        self.read: dict[str, str | None] = {}
        """`merged_into` of every member read from the store, as read."""
        self._next_new = _NEW_SEQ_BASE

    def known(self, member_id: str) -> bool:
        return member_id in self.seq

    def add(self, member_id: str, seq: int | None = None) -> None:
        if seq is None:
            seq = self._next_new
            self._next_new += 1
        self.seq[member_id] = seq
        self.parent.setdefault(member_id, member_id)

    def find(self, member_id: str) -> str:
        root = member_id
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[member_id] != root:
            self.parent[member_id], member_id = root, self.parent[member_id]
        return root


class IdentityResolver:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def resolve(self, conn: asyncpg.Connection, claims: Sequence[Claim]) -> Resolution:
        """`plan` then `lock`, in the caller's transaction; `write` stores the decisions."""
        resolution = await self.plan(conn, claims)
        await self.lock(conn, resolution)
        return resolution

    async def lock(self, conn: asyncpg.Connection, resolution: Resolution) -> None:
        """Lock the members `plan` read and check they are as read (inside the transaction
        that will `write` the resolution)."""
        plan = resolution._plan
        assert plan is not None, "lock() needs the Resolution returned by plan()"
        await _lock_and_check(conn, plan.members, plan.named, {loser for _, loser in plan.merges})

    async def plan(self, conn: asyncpg.Connection, claims: Sequence[Claim]) -> Resolution:
        """Decide the member of every claim, reading only (no transaction needed): `lock`
        then checks the decision still holds, and `write` stores it.

        Reading first and writing after the events are appended keeps the append the first
        write of the transaction (so it never has to wait behind its own earlier writes).
        """
        blind = self.keyring.blind
        blinds: dict[Alias, bytes] = {}
        for c in claims:
            for a in c.aliases:
                if a not in blinds:
                    blinds[a] = blind(a.kind, a.value)

        members = _Members()
        owner: dict[tuple[str, bytes], str] = {}
        explicit = list({c.member_id for c in claims if c.member_id})
        user_ids = list({a.value for a in blinds if a.kind == USER_ID})
        store_ids: set[str] = set()
        merged: set[str] = set()
        # One round trip: the aliases the batch mentions, the members they and the
        # explicit ids name (with creation order and merge pointer), and the members whose
        # store id is one of the batch's user ids (members from before store ids became
        # opaque, or a client sending back the `member_id` an ingest answered).
        for r in await conn.fetch(
            _LOOKUP, [a.kind for a in blinds], list(blinds.values()), explicit, user_ids
        ):
            if r["kind"] is not None and r["kind"] != "$store_id":
                owner[(r["kind"], bytes(r["blind"]))] = r["member_id"]
            else:
                if r["kind"] == "$store_id":
                    store_ids.add(r["member_id"])
                members.add(r["member_id"], r["seq"])
                members.read[r["member_id"]] = r["merged_into"]
                if r["merged_into"] is not None:
                    members.parent[r["member_id"]] = r["merged_into"]
                    merged.add(r["merged_into"])
        await _load_members(conn, members, {m for m in merged if not members.known(m)})

        result = Resolution(member_ids=[])
        plan = _Plan(members=members, owner=owner)
        identified: list[tuple[int, str, list[str]]] = []
        named: list[list[str]] = []
        for i, c in enumerate(claims):
            candidates: list[str] = []
            named.append(candidates)
            created_now: str | None = None
            if c.member_id:
                if not members.known(c.member_id):
                    members.add(c.member_id)
                    result.created.append(c.member_id)
                    created_now = c.member_id
                candidates.append(members.find(c.member_id))
            for a in c.aliases:
                key = (a.kind, blinds[a])
                known = owner.get(key)
                if known is None and a.kind == USER_ID and a.value in store_ids:
                    # A user id that is a store member id names that member. Record the
                    # alias, so the blind index finds it from now on.
                    known = owner[key] = a.value
                    plan.new_aliases[key] = a
                if known is not None:
                    candidates.append(members.find(known))
            if not candidates:
                target = new_member_id()
                members.add(target)
                result.created.append(target)
                existed = False
            else:
                distinct = list(dict.fromkeys(candidates))
                target = min(distinct, key=members.seq.__getitem__)
                for other in distinct:
                    if other != target:
                        members.parent[other] = target
                        plan.merges.append((i, other))
                existed = target != created_now
            linked: list[str] = []
            for a in c.aliases:
                key = (a.kind, blinds[a])
                if key not in owner:
                    owner[key] = target
                    plan.new_aliases[key] = a
                    linked.append(a.kind)
            if linked and existed and c.type != "member.identified":
                identified.append((i, target, linked))
            result.member_ids.append(target)

        result.member_ids = [members.find(m) for m in result.member_ids]
        for ms, m in zip(named, result.member_ids, strict=True):
            ms.append(m)
        plan.named = named
        need_keys = {members.find(owner[k]) for k in plan.new_aliases}
        need_keys |= {result.member_ids[i] for i, c in enumerate(claims) if c.push or c.seal}
        need_keys |= {members.find(loser) for _, loser in plan.merges}
        plan.keys = await load_data_keys(conn, self.keyring, need_keys - set(result.created))
        for m in sorted(need_keys - set(plan.keys)):
            plan.keys[m], wrapped = self.keyring.new_data_key(m)
            plan.new_keys.append((m, wrapped))
        plan.push = self._push_rows(claims, result.member_ids, plan.keys)
        result.keys = plan.keys
        for (kind, b), a in sorted(plan.new_aliases.items(), key=lambda kv: kv[0]):
            m = members.find(plan.owner[(kind, b)])
            plan.alias_rows[0].append(kind)
            plan.alias_rows[1].append(b)
            plan.alias_rows[2].append(m)
            plan.alias_rows[3].append(plan.keys[m].encrypt(a.value.encode(), f"alias:{kind}"))

        for i, m, kinds in identified:
            c = claims[i]
            result.system_events.setdefault(i, []).append(
                (
                    members.find(m),
                    NewEvent(
                        "member.identified",
                        {"alias_kinds": sorted(set(kinds)), "source_event_id": c.event_id},
                        {"source": "identity"},
                        event_id=f"{c.event_id}#identified",
                        occurred_at=c.occurred_at,
                    ),
                )
            )
        for i, loser in plan.merges:
            survivor = members.find(loser)
            c = claims[i]
            data = {"survivor": survivor, "merged": loser, "source_event_id": c.event_id}
            meta = {"source": "identity"}
            result.system_events.setdefault(i, []).extend(
                (m, NewEvent("member.merged", data, meta, event_id=eid, occurred_at=c.occurred_at))
                for m, eid in (
                    (loser, f"merge#{loser}#into"),
                    (survivor, f"merge#{loser}#survivor"),
                )
            )
            result.merges.append((loser, survivor))
        result._plan = plan
        return result

    async def write(self, conn: asyncpg.Connection, resolution: Resolution) -> None:
        """Store what `resolve` decided: new members, keys, aliases, merges, push."""
        plan = resolution._plan
        assert plan is not None, "write() needs the Resolution returned by resolve()"
        if resolution.created:
            await conn.execute(
                "INSERT INTO members (member_id) SELECT unnest($1::text[])", resolution.created
            )
        if plan.new_keys:
            await conn.execute(
                "INSERT INTO member_keys (member_id, wrapped_key) "
                "SELECT * FROM unnest($1::text[], $2::bytea[])",
                [m for m, _ in plan.new_keys],
                [w for _, w in plan.new_keys],
            )
        if plan.merges:
            await self._merge(conn, plan)
        if plan.alias_rows[0]:
            await conn.execute(
                "INSERT INTO member_aliases (kind, blind, member_id, value_enc) "
                "SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bytea[])",
                *plan.alias_rows,
            )
        if plan.push:
            rows = sorted(plan.push.items())
            await conn.execute(
                "INSERT INTO push_subscriptions (blind, member_id, kind, value_enc) "
                "SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bytea[]) "
                "ON CONFLICT (blind) DO UPDATE SET member_id = excluded.member_id, "
                "kind = excluded.kind, value_enc = excluded.value_enc, updated_at = now()",
                [b for b, _ in rows],
                [v[0] for _, v in rows],
                [v[1] for _, v in rows],
                [v[2] for _, v in rows],
            )

    async def _merge(self, conn: asyncpg.Connection, plan: _Plan) -> None:
        members = plan.members
        losers = [loser for _, loser in plan.merges]
        survivors = [members.find(loser) for loser in losers]
        await conn.execute(
            "UPDATE members m SET merged_into = x.s FROM unnest($1::text[], $2::text[]) AS x(l, s) "
            "WHERE (m.member_id = x.l AND m.merged_into IS NULL) OR m.merged_into = x.l",
            losers,
            survivors,
        )
        # Re-encrypt the losers' aliases and push subscriptions under the survivor's key.
        # The losers keep their data keys: the personal properties sealed in their streams
        # stay readable (the survivor's erasure shreds them with its own).
        loser_keys = await load_data_keys(conn, self.keyring, losers)
        rows = await conn.fetch(
            "SELECT kind, blind, member_id, value_enc FROM member_aliases "
            "WHERE member_id = ANY($1::text[]) FOR UPDATE",
            losers,
        )
        for r in rows:
            old = loser_keys.get(r["member_id"])
            if old is not None:
                s = members.find(r["member_id"])
                purpose = f"alias:{r['kind']}"
                value = plan.keys[s].encrypt(old.decrypt(r["value_enc"], purpose), purpose)
                await conn.execute(
                    "UPDATE member_aliases SET member_id = $1, value_enc = $2 "
                    "WHERE kind = $3 AND blind = $4",
                    s,
                    value,
                    r["kind"],
                    r["blind"],
                )
        rows = await conn.fetch(
            "SELECT kind, blind, member_id, value_enc FROM push_subscriptions "
            "WHERE member_id = ANY($1::text[]) FOR UPDATE",
            losers,
        )
        for r in rows:
            old = loser_keys.get(r["member_id"])
            if old is not None and r["blind"] not in plan.push:
                s = members.find(r["member_id"])
                purpose = f"push:{r['kind']}"
                value = plan.keys[s].encrypt(old.decrypt(r["value_enc"], purpose), purpose)
                await conn.execute(
                    "UPDATE push_subscriptions SET member_id = $1, value_enc = $2 WHERE blind = $3",
                    s,
                    value,
                    r["blind"],
                )

    def _push_rows(
        self, claims: Sequence[Claim], member_ids: list[str], keys: dict[str, DataKey]
    ) -> dict[bytes, tuple[str, str, bytes]]:
        latest: dict[bytes, tuple[str, str, bytes]] = {}
        for c, m in zip(claims, member_ids, strict=True):
            for p in c.push:
                b = self.keyring.blind(f"push:{p.kind}", p.key)
                value = json.dumps(p.value, separators=(",", ":"), sort_keys=True).encode()
                latest[b] = (m, p.kind, keys[m].encrypt(value, f"push:{p.kind}"))
        return latest


async def _lock_and_check(
    conn: asyncpg.Connection, members: _Members, named: list[list[str]], losers: set[str]
) -> None:
    """Lock every stored member the batch read and check nothing changed since the read.

    `named[i]` are the members claim `i` named (by id or alias) and the one it resolved to;
    `losers` are the members the batch merges away."""
    if not members.read:
        return
    erased: set[str] = set()
    exclusive = sorted(losers & members.read.keys())
    rows = await conn.fetch(_LOCK_EXCLUSIVE, exclusive) if exclusive else []
    rows += await conn.fetch(_LOCK_SHARED, sorted(members.read.keys() - losers))
    if len(rows) != len(members.read):
        raise IdentityChanged("a member the batch read is gone")
    for r in rows:
        if r["merged_into"] != members.read[r["member_id"]]:
            raise IdentityChanged(f"member {r['member_id']} was merged meanwhile")
        if r["erased_at"] is not None:
            erased.add(r["member_id"])
    if erased:
        hit = [i for i, ms in enumerate(named) if any(m in erased for m in ms)]
        if hit:
            raise ErasedMembers(hit, erased)


async def _load_members(conn: asyncpg.Connection, members: _Members, wanted: set[str]) -> None:
    """Load members with their creation order, following `merged_into` to the survivor."""
    todo = set(wanted)
    while todo:
        rows = await conn.fetch(
            "SELECT member_id, seq, merged_into FROM members WHERE member_id = ANY($1::text[])",
            list(todo),
        )
        todo = set()
        for r in rows:
            members.add(r["member_id"], r["seq"])
            members.read[r["member_id"]] = r["merged_into"]
            if r["merged_into"] is not None:
                members.parent[r["member_id"]] = r["merged_into"]
                if not members.known(r["merged_into"]):
                    todo.add(r["merged_into"])
