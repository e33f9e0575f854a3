"""Who processed what: triggers on a vectorizer's queue record every item queued and, when an
item is deleted as processed, the drainer that did it (its application_name)."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg


def record_claims(db: str, queue: str) -> None:
    """Install the recording triggers on ``queue`` (as the superuser; tables in public)."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.queued (item bigint, key int)")
        conn.execute("CREATE TABLE public.done (drainer text, item bigint, key int)")
        conn.execute("""CREATE FUNCTION public.log_queued() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO public.queued VALUES (NEW._id, NEW.id); RETURN NULL; END $$""")
        conn.execute("""CREATE FUNCTION public.log_done() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO public.done VALUES (current_setting('application_name'), OLD._id, OLD.id);
            RETURN NULL; END $$""")
        conn.execute(f"CREATE TRIGGER log_queued AFTER INSERT ON {queue} FOR EACH ROW EXECUTE FUNCTION public.log_queued()")
        conn.execute(f"CREATE TRIGGER log_done AFTER DELETE ON {queue} FOR EACH ROW EXECUTE FUNCTION public.log_done()")


@dataclass
class Claims:
    """Items queued, and per drainer the items (and keys) it processed."""

    queued: set[int] = field(default_factory=set)
    items: dict[str, list[int]] = field(default_factory=dict)
    keys: dict[str, set[int]] = field(default_factory=dict)

    def assert_split_exactly(self, drainers: set[str]) -> None:
        """Each item processed by one drainer only, every queued item processed, and every
        drainer named took part."""
        every = [item for items in self.items.values() for item in items]
        assert len(every) == len(set(every)), "an item was processed twice"
        assert set(every) == self.queued, (f"{len(self.queued - set(every))} queued items never processed, "
                                           f"{len(set(every) - self.queued)} processed items never seen queued")
        assert drainers <= set(self.items), f"drainers that took part: {sorted(self.items)}"


def read_claims(db: str) -> Claims:
    """What the triggers of ``record_claims`` recorded so far."""
    out = Claims()
    with psycopg.connect(db) as conn:
        out.queued = {r[0] for r in conn.execute("SELECT item FROM public.queued")}
        for drainer, item, key in conn.execute("SELECT drainer, item, key FROM public.done ORDER BY item"):
            out.items.setdefault(drainer, []).append(item)
            out.keys.setdefault(drainer, set()).add(key)
    return out
