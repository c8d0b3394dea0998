"""The DynamoDB store: one on-demand table, three sparse GSIs, conditional writes.

Imported only when ``PUSHPOOL_DYNAMODB_TABLE`` selects it, so boto3 stays out of every
other process. One client per store. Every multi-item change is one
``TransactWriteItems``; every state change is conditional on the state (and the run's
history counter ``hist_n``, so an A->B->A change in between is noticed). Hot paths never
``Scan``: they ``Query`` a key or a GSI.

Single-table layout (``pk``/``sk`` strings; ``T`` = fixed-width ISO-8601 UTC time
``%Y-%m-%dT%H:%M:%S.%fZ``, which sorts like the time; ``J`` = JSON string):

==================  ========================  ==========  =======================================
item                pk                        sk          GSI keys / attributes
==================  ========================  ==========  =======================================
meta value          ``META``                  key         value
API key             ``APIKEY``                id          name, key_hash, created_at, revoked_at,
                                                          role (none: admin), pools J
API key by hash     ``KEYHASH#<hash>``        ``KEYHASH`` id (unique hash, lookup)
work pool           ``POOL``                  name        type, config J, concurrency_limit,
                                                          paused, active (runs in ACTIVE states),
                                                          deployments (DEPs counted_in it)
deployment          ``DEP#<id>``              ``DEP``     doc J, flow_name, name, work_pool,
                                                          paused, counted_in (= work_pool),
                                                          blocks_in J (its blocks: ``blocks``);
                                                          by_kind: ``DEPS`` / id
deployment name     ``DEPNAME#<J[flow,name]>`` ``DEPNAME`` id, created_at (unique name)
schedule            ``SCHED#<id>``            ``SCHED``   doc J, active, next_fire_at T;
                                                          by_deployment: ``SCHEDS#<dep>`` / id;
                                                          by_kind: ``SCHED`` / ``T#id``, only
                                                          while active, unpaused, cursor set
deployment counter  ``CNT#<dep id>``          ``CNT``     active, concurrency_limit (mirror)
flow run            ``RUN#<id>``              ``RUN``     run fields (J for JSON ones), hist_n;
                                                          by_state: ``STATE#<state>`` / ``T#id``
                                                          by_deployment: ``RUNDEP#<dep>`` /
                                                          ``T#id``; by_kind: ``RUNS`` / ``T#id``
                                                          (T = expected_start); began_at T and
                                                          by_began: ``BEGAN`` / ``B#id`` (B =
                                                          began_at) once it has begun (v2)
state history       ``RUN#<id>``              ``HIST#<n>`` type, name, message, timestamp
idempotency key     ``IDEM#<dep>#<key>``      ``IDEM``    run_id
run by name (v2)    ``RUNNAME#<name>``        run id      (none: the key is the lookup)
run by id (v2)      ``RUNID#<id[:4]>``        run id      (an id prefix: begins_with on sk)
teardown            ``TEARDOWN``              ``<id:020>`` run_id, work_pool, infra J, created_at
log line            ``LOG#<run id>``          ``<id:020>`` timestamp, level, message, stream,
                                                          logger, ``expires_at`` (TTL, epoch s)
log batch           ``LOGBATCH#<run id>``     ``<attempt:010>#<seq:010>`` first (id), done
log usage           ``LOGUSE#<run id>``       ``USE``     lines, bytes, dropped_lines,
                                                          dropped_bytes, marker_id
id sequence         ``SEQ``                   name        n (teardown and log ids)
==================  ========================  ==========  =======================================

GSIs (projection ALL): ``by_state`` (gsi1pk, gsi1sk), ``by_deployment`` (gsi2pk, gsi2sk),
``by_kind`` (gsi3pk, gsi3sk), ``by_began`` (gsi4pk, gsi4sk; version 2). A run "begins"
when it leaves ``SCHEDULED`` and again each time it starts ``RUNNING``
(``service.store.base.began_at``); the default "most recent runs" listing reads
``by_began``. The ``RUNNAME#``/``RUNID#`` items are written and deleted in the same
transactions as their run; see ``listing`` for which key answers which filter.

Concurrency limits are enforced by the ``active`` counters
on the pool item and the deployment counter item: a claim increments them in the same
transaction as ``SCHEDULED -> PENDING`` with the condition ``active < concurrency_limit``;
every transition leaving an ACTIVE state decrements them (entering one increments).

A pool's ``deployments`` counter keeps a pool in use from being deleted without reading
every deployment: the transaction that writes a deployment item increments the counter of
the pool it names (conditional on the pool existing) and decrements that of the pool it
named before; deleting a deployment decrements it; ``delete_pool`` is one DeleteItem
conditional on both counters being 0. The deployment item records the pool it is counted
in (``counted_in``), and every write of it is conditional on that value, so two writers
never both move (or drop) the same count. Items from before the counter: a pool without
``deployments`` counts 0 (there were no deployed users then), and a deployment without
``counted_in`` is counted nowhere until it is next deployed (which counts it) — until then
its pool can be deleted under it, as before.

GSI reads are eventually consistent on the real service: a GSI only proposes candidates
(due schedules, due runs, runs to list); every write that matters re-checks the base item
in its condition, so a stale index entry costs a failed condition, never a double claim.
Multi-step maintenance (deleting a deployment with its schedules and runs) is a sequence
of idempotent, conditional single-item writes rather than one transaction (which is
limited to 100 items).

Schema versions and upgrades: the ``META`` item ``schema.version`` holds the version of
the item layout the table is at (:data:`SCHEMA_VERSION`; 1 is the layout above, as
released in 0.1.0, whose tables have no such item and are taken as 1; 2 adds
``by_began`` and the lookup items: its step creates the GSI (``UpdateTable``, waiting
until it is ``ACTIVE``) and backfills every run once — a ``Query`` of ``by_kind``, not a
``Scan``. A stack-owned table gets the GSI from the template; run ``pushpool db
upgrade`` once against it to backfill older runs (until then they are missing from the
"most recent" listing and from name/prefix lookups, not from anything else); 3 adds the
event items' sparse index keys (``events``): its step reads each hour partition of events
once and rewrites items lacking them (until then, older events are missing from listings
by deployment, flow or exact name, not from others). ``migrate`` (at
start when the store may create its table, and ``pushpool db upgrade``) brings a table
up: for each version after the stored one it runs that version's step in
``_ITEM_UPGRADES`` (idempotent and resumable: a rewrite of the items that cannot be read
as they are, conditional on each item's old shape), then moves ``schema.version`` on
with a condition on its old value, so concurrent starts apply a step at most once to
completion. A table at a newer version than this code knows raises ``SchemaError``.
Everything else is upgraded lazily: a reader takes an attribute an older item lacks as
its documented default (a pool without ``deployments`` counts 0, above), and the next
write of the item writes the new shape; no release needs a table scan to start.

The code is split the way a reader looks for things, each part a mixin composed into
:class:`DynamoStore`: ``_table`` (item encoding, times, expressions and the table's
calls: ``_get``/``_put``/``_upd``/``_query``/``_transact``...), ``schema`` (creating the
table, schema versions, meta items), ``keys``, ``pools``, ``deployments`` (with schedules
and the tick), ``runs`` (with claims, transitions and the teardown queue), ``logs`` and
``tasks`` (task runs, cache records, tag concurrency limits). The helpers are re-exported
here, so ``from service.store.dynamo import _Expr, _update, ts, Item`` keeps working.
"""

from __future__ import annotations

from service.store.dynamo._table import (
    _FMT,
    _GSIS,
    _RETRIES,
    _RUN_JSON,
    _RUN_TIMES,
    DEFAULT_LOG_RETENTION_SECONDS,
    Item,
    _cancelled,
    _code,
    _cond,
    _dec,
    _deser,
    _enc,
    _Expr,
    _limit_ok,
    _opt_ts,
    _order,
    _reasons,
    _ser,
    _Table,
    _update,
    from_ts,
    ts,
)
from service.store.dynamo.automations import DynamoAutomationsMixin
from service.store.dynamo.blocks import DynamoBlocks
from service.store.dynamo.deployments import (
    DeploymentsMixin,
    _dep_guard,
)
from service.store.dynamo.events import DynamoEventsMixin
from service.store.dynamo.keys import (
    KeysMixin,
    _live_admin,
    _revoke,
)
from service.store.dynamo.listing import (
    RunListingMixin,
    _decode_cursor,
    _encode_cursor,
    _run_filter_parts,
    _run_sk_condition,
)
from service.store.dynamo.logs import (
    LogsMixin,
)
from service.store.dynamo.param_schema import DynamoParameterSchema
from service.store.dynamo.pools import (
    PoolsMixin,
    _pool_count,
    _pool_exists,
)
from service.store.dynamo.runs import (
    RunsMixin,
    _key_free,
)
from service.store.dynamo.schema import (
    _ITEM_UPGRADES,
    _SCHEMA_KEY,
    _SCHEMA_NOTES,
    SCHEMA_VERSION,
    SchemaMixin,
)
from service.store.dynamo.shared_meta import DynamoSharedMeta
from service.store.dynamo.task_slots import DynamoTaskSlotsMixin
from service.store.dynamo.tasks import (
    TasksMixin,
    _live_leases,
)


class DynamoStore(
    DynamoBlocks,
    DynamoEventsMixin,
    DynamoSharedMeta,
    DynamoTaskSlotsMixin,
    DynamoAutomationsMixin,
    DynamoParameterSchema,
    KeysMixin,
    PoolsMixin,
    DeploymentsMixin,
    RunListingMixin,
    RunsMixin,
    LogsMixin,
    TasksMixin,
    SchemaMixin,
):
    """The :class:`~service.store.base.Store` on one DynamoDB table (layout above)."""

    expires_logs = True  # each line carries ``expires_at`` (TTL); reads skip expired ones


__all__ = [
    "DEFAULT_LOG_RETENTION_SECONDS",
    "SCHEMA_VERSION",
    "_FMT",
    "_GSIS",
    "_ITEM_UPGRADES",
    "_RETRIES",
    "_RUN_JSON",
    "_RUN_TIMES",
    "_SCHEMA_KEY",
    "_SCHEMA_NOTES",
    "DeploymentsMixin",
    "DynamoStore",
    "Item",
    "KeysMixin",
    "LogsMixin",
    "PoolsMixin",
    "RunListingMixin",
    "RunsMixin",
    "SchemaMixin",
    "TasksMixin",
    "_Expr",
    "_Table",
    "_cancelled",
    "_code",
    "_cond",
    "_dec",
    "_decode_cursor",
    "_dep_guard",
    "_deser",
    "_enc",
    "_encode_cursor",
    "_key_free",
    "_limit_ok",
    "_live_admin",
    "_live_leases",
    "_opt_ts",
    "_order",
    "_pool_count",
    "_pool_exists",
    "_reasons",
    "_revoke",
    "_run_filter_parts",
    "_run_sk_condition",
    "_ser",
    "_update",
    "from_ts",
    "ts",
]
