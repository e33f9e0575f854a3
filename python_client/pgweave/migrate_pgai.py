"""`pgweave migrate-from-pgai DSN`: turn a database where pgai 0.12 made vectorizers into a
pgweave one, keeping every embedding (no model call) and the names users query.

What happens, in ONE transaction (any failure leaves the database as it was):
1. pgai's triggers on the source tables and its event triggers are dropped, and pgai's schema
   ``ai`` is renamed to ``ai_pgai`` (a backup: nothing of it is deleted);
2. pgweave is installed (a fresh schema ``ai``);
3. for each pgai vectorizer, by id: its view and store move into ``ai_pgai``; the pgweave
   vectorizer is created with pgai's id, name, view and store names and configuration; the
   stored chunks and embeddings are copied over (embedded_md5 = md5 of pgai's chunk, which is
   the text pgai embedded), and so are the pending and failed queue items and the grants;
   the source tables' owners get ai usage (ai.grant_ai_usage), as they managed them in pgai.
   pgai stores the formatted chunk (the template applied), pgweave the chunk itself: with a
   template other than ``$chunk`` every row is queued once, and the engine rewrites its chunks
   reusing every embedding whose text is unchanged (no model call).
Background processing is then arranged as ``pgweave install`` does. pgai's worker must be
stopped first: the dry run says so, and the migration refuses while it sends heartbeats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

import psycopg
import typer
from psycopg import sql
from psycopg.rows import dict_row

BACKUP_SCHEMA = "ai_pgai"
_DROPPED_KEYS = ("config_type",)


class MigrationRefused(Exception):
    """The database cannot be migrated as it is; the message says why and what to do."""


@dataclass
class PgaiVectorizer:
    """One pgai vectorizer and what pgweave makes of it."""

    row: dict[str, Any]
    chunks: int = 0
    pending: int = 0
    failed: int = 0
    arguments: dict[str, Any] = field(default_factory=dict)   # jsonb arguments of ai.create_vectorizer
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def view(self) -> str:
        """The view users query, schema-qualified."""
        return f"{self.row['view_schema']}.{self.row['view_name']}"

    @property
    def store(self) -> str:
        """The store table, schema-qualified."""
        return f"{self.row['target_schema']}.{self.row['target_table']}"

    @property
    def restore_chunks(self) -> bool:
        """pgai's chunks hold the template's output; pgweave's the chunk: rewrite them."""
        return (self.arguments.get("formatting") or {}).get("template", "$chunk") != "$chunk"


@dataclass
class Plan:
    """What a migration would do (the dry run prints it)."""

    pgai_version: str
    vectorizers: list[PgaiVectorizer]
    worker_seen_seconds_ago: float | None

    @property
    def problems(self) -> list[str]:
        """Why vectorizers cannot be migrated, one line each (empty: all can)."""
        return [f"vectorizer {v.row['id']} ({v.row['name']}): {p}" for v in self.vectorizers for p in v.problems]


def _clean(config: dict | None) -> dict | None:
    """A pgai config object without pgai's own bookkeeping keys."""
    if config is None:
        return None
    return {k: v for k, v in config.items() if k not in _DROPPED_KEYS}


def translate(v: PgaiVectorizer) -> None:
    """Fill in pgweave's create_vectorizer arguments for a pgai vectorizer, or its problems."""
    config = v.row["config"]
    destination = config.get("destination") or {"implementation": "table"}
    if destination.get("implementation") != "table":
        v.problems.append("its embedding is a column of the source table (ai.destination_column), which pgweave "
                          "does not write; drop it in pgai first (ai.drop_vectorizer) and recreate it with "
                          "ai.destination_table() and ai.chunking_none() after the migration")
    loading = _clean(config.get("loading"))
    if not loading or loading.get("implementation") != "column":
        v.problems.append(f"it loads with {(loading or {}).get('implementation')!r}; pgweave migrates "
                          "ai.loading_column vectorizers only")
    embedding = _clean(config.get("embedding"))
    if (embedding or {}).get("implementation") not in ("ollama", "openai"):
        v.problems.append(f"it embeds with {(embedding or {}).get('implementation')!r}; pgweave embeds with "
                          "ai.embedding_ollama or ai.embedding_openai (any OpenAI-compatible server)")
    indexing = _clean(config.get("indexing")) or {"implementation": "none"}
    if indexing.get("implementation") not in ("none", "hnsw"):
        v.notes.append(f"indexing {indexing.get('implementation')!r} becomes ai.indexing_none(): an index "
                       "pgai made stays on the backup store; create one on the new store if you need it")
        indexing = {"implementation": "none"}
    processing = {k: x for k, x in (config.get("processing") or {}).items() if k in ("batch_size", "concurrency")}
    v.arguments = {
        "loading": loading, "embedding": embedding, "chunking": _clean(config.get("chunking")),
        "formatting": _clean(config.get("formatting")) or {"implementation": "python_template", "template": "$chunk"},
        "indexing": indexing, "processing": processing,
        "scheduling": {"implementation": "cron", "schedule": "* * * * *", "loop_seconds": 62, "poll_interval": 0.2},
    }
    if v.row.get("disabled"):
        v.notes.append("disabled in pgai: its schedule stays disabled (ai.enable_vectorizer_schedule to start it)")
    else:
        v.notes.append("processed in the background by pgweave's scheduler (pgai's worker is no longer needed)")
    if v.restore_chunks:
        v.notes.append(f"template {v.arguments['formatting']['template']!r}: each row is queued once so that "
                       "its chunks are stored without the template (embeddings reused, no model call)")


def _count(conn: psycopg.Connection, schema: str | None, table: str | None) -> int:
    """Rows of a table, 0 when it is missing."""
    if not schema or not table:
        return 0
    if conn.execute("SELECT to_regclass(%s)", (sql.Identifier(schema, table).as_string(conn),)).fetchone()[0] is None:
        return 0
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()[0]


def plan(conn: psycopg.Connection, queue_schema: str = "ai") -> Plan:
    """Read the pgai catalog (schema ``queue_schema`` holds pgai's catalog and queues)."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'ai'").fetchone():
        raise MigrationRefused("this database has pgai's extension `ai` (pgai before 0.10); upgrade to the pgai "
                               "0.12 library first (`pgai install -d DSN`), then migrate")
    if conn.execute("SELECT to_regclass('ai.pgweave_install')").fetchone()[0] is not None:
        raise MigrationRefused("schema ai is pgweave's already: there is nothing to migrate")
    if conn.execute("SELECT to_regclass('ai.pgai_lib_version')").fetchone()[0] is None:
        raise MigrationRefused("no pgai library in this database (ai.pgai_lib_version is missing); "
                               "install pgweave with `pgweave install DSN` instead")
    version = conn.execute("SELECT version FROM ai.pgai_lib_version WHERE name = 'ai'").fetchone()[0]
    if not version.startswith("0.12."):
        raise MigrationRefused(f"pgai {version} is installed; this migration reads pgai 0.12's catalog: "
                               "upgrade pgai to 0.12 first (`pip install pgai==0.12.1 && pgai install -d DSN`)")
    rows = conn.cursor(row_factory=dict_row).execute("SELECT * FROM ai.vectorizer ORDER BY id").fetchall()
    vectorizers = []
    for row in rows:
        destination = row["config"].get("destination") or {}   # pgai 0.12 keeps the names here
        for key in ("target_schema", "target_table", "view_schema", "view_name"):
            row[key] = destination.get(key)
        v = PgaiVectorizer(row)
        v.chunks = _count(conn, row["target_schema"], row["target_table"])
        v.pending = _count(conn, row["queue_schema"], row["queue_table"])
        v.failed = _count(conn, row["queue_schema"], row.get("queue_failed_table"))
        translate(v)
        vectorizers.append(v)
    seen = None
    if conn.execute("SELECT to_regclass('ai.vectorizer_worker_process')").fetchone()[0] is not None:
        seen = conn.execute("SELECT extract(epoch FROM now() - max(last_heartbeat))::float8 "
                            "FROM ai.vectorizer_worker_process").fetchone()[0]
    return Plan(version, vectorizers, seen)


def _detach_pgai(conn: psycopg.Connection, p: Plan) -> None:
    """Drop pgai's source triggers and event triggers; rename its schema ai to the backup."""
    if conn.execute("SELECT to_regnamespace(%s)", (BACKUP_SCHEMA,)).fetchone()[0] is not None:
        raise MigrationRefused(f"schema {BACKUP_SCHEMA} exists already (an earlier migration's backup?); "
                               f"rename or drop it first")
    for v in p.vectorizers:
        source = sql.Identifier(v.row["source_schema"], v.row["source_table"])
        for trigger in (v.row["trigger_name"], v.row["trigger_name"] + "_truncate"):
            conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), source))
    for (name,) in conn.execute("""SELECT t.evtname FROM pg_event_trigger t JOIN pg_proc p ON p.oid = t.evtfoid
                                   WHERE p.pronamespace = 'ai'::regnamespace""").fetchall():
        conn.execute(sql.SQL("DROP EVENT TRIGGER {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("ALTER SCHEMA ai RENAME TO {}").format(sql.Identifier(BACKUP_SCHEMA)))


def _move_aside(conn: psycopg.Connection, schema: str, name: str, kind: str, new_name: str) -> None:
    """Rename a pgai view or store and move it into the backup schema."""
    conn.execute(sql.SQL("ALTER {} {} RENAME TO {}").format(sql.SQL(kind), sql.Identifier(schema, name),
                                                            sql.Identifier(new_name)))
    conn.execute(sql.SQL("ALTER {} {} SET SCHEMA {}").format(sql.SQL(kind), sql.Identifier(schema, new_name),
                                                             sql.Identifier(BACKUP_SCHEMA)))


def _copy_grants(conn: psycopg.Connection, old: str, new: str) -> None:
    """Give the roles that could read pgai's relation (other than its owner) the same on pgweave's."""
    grants = conn.execute("""
        SELECT DISTINCT a.privilege_type, coalesce(r.rolname, 'PUBLIC') FROM pg_class c,
               aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = %s::regclass AND a.grantee <> c.relowner AND a.privilege_type = 'SELECT'""",
                          (old,)).fetchall()
    for _, role in grants:
        grantee = sql.SQL("PUBLIC") if role == "PUBLIC" else sql.Identifier(role)
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.SQL(new), grantee))


def _pk(v: PgaiVectorizer) -> sql.Composable:
    """The source key's columns, comma-separated."""
    return sql.SQL(", ").join(sql.Identifier(k["attname"]) for k in sorted(v.row["source_pk"],
                                                                           key=lambda k: k["pknum"]))


def _migrate_one(conn: psycopg.Connection, v: PgaiVectorizer) -> None:
    """Recreate one pgai vectorizer as pgweave's, with its id, names, chunks and queue."""
    r, vid = v.row, v.row["id"]
    old_view, old_store = f"pgai_{vid}_view", f"pgai_{vid}_store"
    _move_aside(conn, r["view_schema"], r["view_name"], "VIEW", old_view)
    _move_aside(conn, r["target_schema"], r["target_table"], "TABLE", old_store)
    conn.execute("SELECT setval(pg_get_serial_sequence('ai.vectorizer', 'id'), %s, false)", (vid,))
    args = {k: json.dumps(x) for k, x in v.arguments.items()}
    created = conn.execute("""
        SELECT ai.create_vectorizer(%(source)s::regclass, name => %(name)s,
            destination => ai.destination_table(target_schema => %(ts)s, target_table => %(tt)s,
                                                view_schema => %(vs)s, view_name => %(vn)s),
            loading => %(loading)s::jsonb, embedding => %(embedding)s::jsonb, chunking => %(chunking)s::jsonb,
            formatting => %(formatting)s::jsonb, indexing => %(indexing)s::jsonb,
            scheduling => %(scheduling)s::jsonb, processing => %(processing)s::jsonb, enqueue_existing => false)""",
        {"source": sql.Identifier(r["source_schema"], r["source_table"]).as_string(conn), "name": r["name"],
         "ts": r["target_schema"], "tt": r["target_table"], "vs": r["view_schema"], "vn": r["view_name"],
         **args}).fetchone()[0]
    assert created == vid, (created, vid)
    if r.get("disabled"):
        conn.execute("SELECT ai.disable_vectorizer_schedule(%s)", (vid,))
    pk = _pk(v)
    backup = sql.Identifier(BACKUP_SCHEMA, old_store)
    new_store = sql.Identifier(r["target_schema"], r["target_table"])
    conn.execute(sql.SQL("""INSERT INTO {new} (embedding_uuid, {pk}, chunk_seq, chunk, embedding, embedded_md5)
                            SELECT embedding_uuid, {pk}, chunk_seq, chunk, embedding, md5(chunk) FROM {old}""")
                 .format(new=new_store, pk=pk, old=backup))
    queue = sql.Identifier("ai", f"_vectorizer_q_{vid}")
    queue_schema = BACKUP_SCHEMA if r["queue_schema"] == "ai" else r["queue_schema"]
    if _count(conn, queue_schema, r["queue_table"]):
        conn.execute(sql.SQL("INSERT INTO {q} ({pk}, _queued_at, _attempts) SELECT {pk}, queued_at, loading_retries "
                             "FROM {old}").format(q=queue, pk=pk, old=sql.Identifier(queue_schema, r["queue_table"])))
    if _count(conn, queue_schema, r.get("queue_failed_table")):
        conn.execute(sql.SQL("INSERT INTO {q} ({pk}, _failed_at, _attempts, _last_error) "
                             "SELECT {pk}, created_at, 0, 'failed in pgai at step ' || failure_step FROM {old}")
                     .format(q=sql.Identifier("ai", f"_vectorizer_q_failed_{vid}"), pk=pk,
                             old=sql.Identifier(queue_schema, r["queue_failed_table"])))
    if v.restore_chunks:
        conn.execute(sql.SQL("INSERT INTO {q} ({pk}) SELECT {pk} FROM {src}").format(
            q=queue, pk=pk, src=sql.Identifier(r["source_schema"], r["source_table"])))
    for old, new in ((sql.Identifier(BACKUP_SCHEMA, old_view), sql.Identifier(r["view_schema"], r["view_name"])),
                     (backup, new_store)):
        _copy_grants(conn, old.as_string(conn), new.as_string(conn))
    conn.execute(sql.SQL("DROP VIEW {}").format(sql.Identifier(BACKUP_SCHEMA, old_view)))


def migrate(dsn: str, force: bool = False) -> Plan:
    """Migrate the database at ``dsn`` (see the module's docstring); returns what was migrated."""
    import sqlalchemy
    from alembic import command

    from .install import _connected, _install_error, alembic_config, arrange_background

    with psycopg.connect(dsn) as conn:
        if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
            raise MigrationRefused("nothing was changed: the migration installs pgweave (the extension plpython3u) "
                                   "and replaces pgai's triggers on every owner's tables: connect as a superuser")
        p = plan(conn)
    if p.problems:
        raise MigrationRefused("nothing was changed; these vectorizers cannot be migrated:\n  " + "\n  ".join(p.problems))
    if p.worker_seen_seconds_ago is not None and p.worker_seen_seconds_ago < 120 and not force:
        raise MigrationRefused(f"pgai's vectorizer worker was alive {p.worker_seen_seconds_ago:.0f} s ago: stop it "
                               "(and every `pgai vectorizer worker`) first, or pass --force if it is stopped")
    try:
        with _connected(dsn) as connection:
            conn = connection.connection.driver_connection
            _detach_pgai(conn, p)
            command.upgrade(alembic_config(connection), "head")
            for v in p.vectorizers:
                _migrate_one(conn, v)
            # The tables' owners managed their vectorizers in pgai: they do in pgweave too.
            conn.execute("""SELECT ai.grant_ai_usage(r.rolname) FROM pg_roles r
                            WHERE NOT r.rolsuper AND r.rolname IN (SELECT owner FROM ai.vectorizer)""")
    except sqlalchemy.exc.DBAPIError as exc:   # nothing was changed: one transaction
        raise _install_error(exc.orig) from exc
    arrange_background(dsn)
    return p


def describe(p: Plan, done: bool) -> list[str]:
    """The lines the command prints: per vectorizer what it has and what happens to it."""
    lines = [f"pgai {p.pgai_version}: {len(p.vectorizers)} vectorizer(s)"]
    for v in p.vectorizers:
        r = v.row
        lines.append(f"  {r['id']} {r['name']}: {r['source_schema']}.{r['source_table']} -> view {v.view}, "
                     f"store {v.store}; {v.chunks} chunk(s) kept, {v.pending} pending, {v.failed} failed")
        lines += [f"      cannot migrate: {x}" for x in v.problems] + [f"      {x}" for x in v.notes]
    if p.worker_seen_seconds_ago is not None:
        lines.append(f"pgai's worker last sent a heartbeat {p.worker_seen_seconds_ago:.0f} s ago")
    if done:
        lines += [f"migrated: every embedding kept, no model called; pgai's schema is kept as {BACKUP_SCHEMA} "
                  f"(DROP SCHEMA {BACKUP_SCHEMA} CASCADE once you are satisfied)",
                  "stop pgai's worker for good (`pgai vectorizer worker`): pgweave processes these vectorizers now"]
    else:
        lines += ["dry run: nothing changed. Stop pgai's worker (`pgai vectorizer worker`), then run again "
                  "with --apply"]
    return lines


def command(
    dsn_arg: Annotated[Optional[str], typer.Argument(metavar="DSN", help="the database where pgai made vectorizers")] = None,
    dsn: Annotated[Optional[str], typer.Option("--dsn", help="libpq DSN (instead of the argument)")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="migrate for real (default: a dry run)")] = False,
    force: Annotated[bool, typer.Option("--force", help="migrate although pgai's worker sent a heartbeat lately")] = False,
) -> None:
    """Move a pgai 0.12 database to pgweave: catalog, queues, stores and views, every embedding kept.

    A dry run unless --apply. Needs a superuser (it installs pgweave).
    """
    from .client import resolve_dsn
    from .display import console, err_console
    from .errors import PgweaveError

    target = dsn_arg or resolve_dsn(dsn)
    try:
        if apply:
            p = migrate(target, force)
        else:
            with psycopg.connect(target) as conn:
                p = plan(conn)
    except (MigrationRefused, PgweaveError, psycopg.Error) as exc:
        err_console.print("[bold red]error:[/] ", end="")
        err_console.print(str(exc).strip(), markup=False, highlight=False)
        raise typer.Exit(1)
    for line in describe(p, apply):
        console.print(line, markup=False, highlight=False)
    if p.problems:
        raise typer.Exit(1)
