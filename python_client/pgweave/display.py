"""What the CLI prints: tables, a vectorizer's details, progress bars and JSON.

Every view is laid out for an 80-column terminal first and uses more room when there is some:
one line per row, names shortened in the middle (never wrapped), long texts cut with an
ellipsis and shown in full on request.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Table
from rich.text import Text

from .results import SearchResult, SyncProgress, Vectorizer, VectorizerError, VectorizerStatus

console = Console(soft_wrap=False)
err_console = Console(stderr=True, soft_wrap=True)


# -- small formats -----------------------------------------------------------------------------

def ellipsize(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, the middle replaced by '…' when too long."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def one_line(text: str | None) -> str:
    """A text's whitespace (newlines included) collapsed to single spaces."""
    return " ".join((text or "").split())


def ago(moment: datetime | None) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago' (or '-')."""
    if moment is None:
        return "-"
    seconds = max(0, int((datetime.now(timezone.utc) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def count(n: int | None) -> str:
    """A count with thousands separators, or '-'."""
    return "-" if n is None else f"{n:,}"


def duration(seconds: float | None) -> str:
    """'42s', '3m05s', '2h10m' (or '-')."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def rate(per_second: float | None) -> str:
    """Items per second, e.g. '12.5/s' (or '-')."""
    if not per_second:
        return "-"
    return f"{per_second:,.0f}/s" if per_second >= 100 else f"{per_second:.1f}/s"


@dataclass(frozen=True)
class Column:
    """A column of a one-line-per-row table: its header, and how it gives way when room is short.

    ``fit`` is "keep" (its natural width), "middle" (a name: shortened in the middle, at least
    ``least`` wide) or "end" (a long text: cut at the end to the room left, or left out when
    under ``least``).
    """

    header: str
    fit: str = "keep"
    justify: str = "left"
    least: int = 8


def fitted_table(columns: list[Column], rows: list[list[Any]], width: int | None = None) -> Table:
    """A table with one line per row in ``width`` columns (default: the console's).

    Cells are strings or (string, style). "keep" columns take their natural width; "middle"
    columns shrink to what is left (shortened in the middle, never wrapped); an "end" column
    takes the rest, or is left out when fewer than its ``least`` characters remain.
    """
    width = width or console.width
    cells = [[c if isinstance(c, tuple) else (str(c), "") for c in row] for row in rows]
    natural = [max([len(col.header)] + [len(r[i][0]) for r in cells]) for i, col in enumerate(columns)]
    keep = sum(n for n, c in zip(natural, columns) if c.fit == "keep")
    flexible = [i for i, c in enumerate(columns) if c.fit == "middle"]
    rest = [i for i, c in enumerate(columns) if c.fit == "end"]
    shown = list(range(len(columns)))
    rest_least = sum(columns[i].least + 2 for i in rest)
    room = width - keep - 2 * (len(columns) - 1 - len(rest))
    if room - sum(min(natural[i], columns[i].least) for i in flexible) < rest_least:
        shown = [i for i in shown if i not in rest]      # names come first: the long text goes
        rest, rest_least = [], 0
    sizes = list(natural)
    while sum(sizes[i] for i in flexible) > room - rest_least:   # shorten the widest name first
        shrinkable = [i for i in flexible if sizes[i] > columns[i].least]
        if not shrinkable:
            break
        sizes[max(shrinkable, key=lambda i: sizes[i])] -= 1
    for i in rest:
        sizes[i] = min(natural[i], room - sum(sizes[j] for j in flexible) - 2)
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False,
                  header_style="bold underline")
    for i in shown:
        table.add_column(columns[i].header, justify=columns[i].justify, no_wrap=True,
                         width=sizes[i], overflow="ellipsis")
    for row in cells:
        out = []
        for i in shown:
            text, style = row[i]
            if columns[i].fit == "middle":
                text = ellipsize(text, sizes[i])
            elif len(text) > sizes[i]:
                text = text[:max(0, sizes[i] - 1)] + "…"
            out.append(Text(text, style=style, no_wrap=True))
        table.add_row(*out)
    return table


# -- JSON ------------------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """Dataclasses (with their in_sync), datetimes and vectors as plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        data = {k: jsonable(v) for k, v in asdict(value).items()}
        if hasattr(type(value), "in_sync"):
            data["in_sync"] = value.in_sync
        return data
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_list"):     # pgvector.Vector
        return value.to_list()
    if hasattr(value, "tolist"):      # numpy arrays and scalars
        return value.tolist()
    return value


def print_json(value: Any, *, indent: int | None = 2) -> None:
    """``value`` as JSON on stdout (one line with indent=None)."""
    sys.stdout.write(json.dumps(jsonable(value), indent=indent, default=str) + "\n")
    sys.stdout.flush()


def hit_json(result: SearchResult) -> dict:
    """A search result for --json: without the embedding (384+ numbers per hit)."""
    data = jsonable(result)
    data["row"] = {k: v for k, v in data["row"].items() if k != "embedding"}
    return data


# -- status ----------------------------------------------------------------------------------

def state(s: VectorizerStatus) -> tuple[str, str]:
    """A vectorizer's state in a word, and its colour: the worst thing that holds."""
    if s.unprocessed_because and s.pending_items:
        return "nobody", "red"           # items wait and nothing will process them
    if s.failing:
        return "failing", "red"          # the last runs failed; no success since
    if s.failed_items:
        return "parked", "red"           # items gave up after max_attempts
    if s.disabled:
        return "disabled", "yellow"
    if s.pending_items:
        return "syncing", "yellow"
    return "in sync", "green"


def needs_attention(s: VectorizerStatus) -> bool:
    """Whether `status` should exit 1 for this vectorizer (its state is red)."""
    return state(s)[1] == "red"


def _processed_by(s: VectorizerStatus) -> str:
    """Who processes the queue, in a few words ('-' for servers that do not say)."""
    if s.processed_by is None:
        return s.schedule or "-"
    if s.unprocessed_because:
        return "nobody"
    # "worker host:pid 3 s ago" -> "worker 3s": the host is in `status NAME`.
    parts = s.processed_by.split()
    if parts[:1] == ["worker"] and len(parts) >= 4:
        return f"worker {parts[-3]}s"
    return parts[0] if parts else s.processed_by


def status_table(statuses: list[VectorizerStatus], width: int | None = None) -> Table:
    """One line per vectorizer: state, pending, parked, chunks, who processes it, last success,
    and the current error cut to the room left."""
    columns = [Column("vectorizer", "middle", least=24), Column("state"),
               Column("pending", justify="right"), Column("parked", justify="right"),
               Column("chunks", justify="right"), Column("by", "middle", least=6),
               Column("last ok"), Column("error", "end", least=12)]
    rows = []
    for s in statuses:
        word, colour = state(s)
        rows.append([s.name, (word, colour), count(s.pending_items),
                     (count(s.failed_items), "red" if s.failed_items else ""),
                     count(s.stored_chunks), _processed_by(s), ago(s.last_success_at),
                     (one_line(s.current_error), "red") if s.current_error else "-"])
    return fitted_table(columns, rows, width)


def status_footer(statuses: list[VectorizerStatus]) -> list[str]:
    """One short line per trouble of a vectorizer, naming the command that shows more."""
    lines = []
    for s in statuses:
        if s.unprocessed_because and s.pending_items:
            lines.append(f"{s.name}: nothing processes its queue ({s.unprocessed_because}); "
                         f"start `pgweave worker -v {s.name}`")
        if s.failing:
            lines.append(f"{s.name}: no batch succeeded since the last error; "
                         f"`pgweave status {s.name}` shows it")
        if s.failed_items:
            lines.append(f"{s.name}: {s.failed_items:,} item(s) gave up; `pgweave errors {s.name}`, "
                         f"then `pgweave retry {s.name}`")
    return lines


def status_errors(statuses: list[VectorizerStatus]) -> list[str]:
    """The full text of each current error (status --errors)."""
    return [f"{s.name} ({ago(s.last_error_at)}): {s.current_error}" for s in statuses if s.current_error]


def status_details(s: VectorizerStatus, latest: VectorizerError | None = None) -> Table:
    """Everything about one vectorizer, a field per line, its last error in full with the
    hint of its newest recorded error ``latest`` (status NAME)."""
    word, colour = state(s)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [
        ("vectorizer", escape(s.name)), ("state", f"[{colour}]{word}[/]"),
        ("source → view", escape(f"{s.source_table} → {s.view}")),
        ("store table", escape(str(s.target_table))), ("model", escape(str(s.embedding_model))),
        ("schedule", escape(str(s.schedule))),
        ("processed by", escape(s.processed_by) if s.processed_by is not None else "- (not reported)"),
        ("pending", count(s.pending_items)), ("parked (failed)", count(s.failed_items)),
        ("chunks stored", count(s.stored_chunks)),
        ("items processed", count(s.items_processed)),
        ("chunks embedded", f"{count(s.chunks_embedded)} ({count(s.chunks_reused)} reused)"),
        ("model calls", count(s.model_calls)),
        ("last success", ago(s.last_success_at)),
    ]
    if s.last_error:
        recovered = "" if s.failing else " [green](recovered: a batch succeeded since)[/]"
        hint = (latest.details or {}).get("hint") if latest else None
        rows.append(("last error", f"{ago(s.last_error_at)}{recovered}\n{escape(s.last_error)}"
                     + (f"\n[dim]hint: {escape(hint)}[/]" if hint else "")))
    for label, value in rows:
        table.add_row(label, value)
    return table


# -- other listings --------------------------------------------------------------------------

def vectorizers_table(found: list[Vectorizer], width: int | None = None) -> Table:
    """One line per vectorizer: name, source, model, chunking, scheduling."""
    columns = [Column("vectorizer", "middle", least=20), Column("source", "middle", least=12),
               Column("embedding", "middle", least=16), Column("chunking"), Column("sched")]
    rows = []
    for v in found:
        c = v.config
        emb, chunking = c.get("embedding", {}), c.get("chunking", {})
        kind = str(chunking.get("implementation", "-")).replace("recursive_character_text_splitter",
                                                                "recursive")
        size = f" {chunking['chunk_size']}/{chunking.get('chunk_overlap', 0)}" if "chunk_size" in chunking else ""
        rows.append([v.name, f"{v.source_schema}.{v.source_table}",
                     f"{emb.get('model')} ({emb.get('dimensions')})",
                     kind + size, str(c.get("scheduling", {}).get("implementation"))])
    return fitted_table(columns, rows, width)


def errors_table(found: list[VectorizerError], width: int | None = None) -> Table:
    """One line per error: when, which vectorizer, the message cut to the room left."""
    columns = [Column("when"), Column("vectorizer", "middle", least=20),
               Column("message", "end", least=20)]
    rows = [[ago(e.recorded), e.name or str(e.vectorizer_id), one_line(e.message)] for e in found]
    return fitted_table(columns, rows, width)


def errors_full(found: list[VectorizerError]) -> list[str]:
    """Every error in full, with its hint (errors --full)."""
    out = []
    for e in found:
        hint = (e.details or {}).get("hint")
        out.append(f"{e.recorded:%Y-%m-%d %H:%M:%S} {e.name or e.vectorizer_id}\n  {e.message}"
                   + (f"\n  hint: {hint}" if hint else ""))
    return out


def search_table(results: list[SearchResult], hybrid: bool, width: int | None = None) -> Table:
    """One line per hit: rank, distance (or score), key and the chunk's start, cut to fit."""
    columns = [Column("#", justify="right"), Column("score" if hybrid else "distance", justify="right"),
               Column("key", "middle", least=8), Column("chunk", "end", least=10)]
    rows = [[str(r.rank), f"{r.score:.4f}" if hybrid else f"{r.distance:.4f}",
             ", ".join(f"{c}={v}" for c, v in r.key.items()), one_line(r.chunk)] for r in results]
    return fitted_table(columns, rows, width)


# -- progress --------------------------------------------------------------------------------

class _Counts(ProgressColumn):
    """'1,234/5,000 24%' for a task (its own numbers: a 0/0 backlog still reads 0/0)."""

    def render(self, task: Task) -> Text:
        """The task's counts and percentage."""
        done, total = task.fields["items_done"], task.fields["items_total"]
        pct = f"{100 * done / total:3.0f}%" if total else "100%"
        return Text(f"{done:,}/{total:,} {pct}", no_wrap=True)


class ProgressBoard:
    """Live progress bars, one per vectorizer, over its whole backlog as the database counts it:
    items processed of processed + pending, with the rate and the time left."""

    def __init__(self, output: Console):
        width = output.width
        self.name_width = 18 if width < 100 else 32
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=max(10, min(40, width - 62))), _Counts(),
            TextColumn("{task.fields[rate]:>8} {task.fields[eta]}"),
            console=output, expand=False)
        self.tasks: dict[str, Any] = {}
        self.first: dict[str, VectorizerStatus] = {}

    def __enter__(self) -> "ProgressBoard":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.tasks:   # started by the first show(): an early error leaves no empty frame
            self.progress.stop()

    def show(self, p: SyncProgress) -> None:
        """Draw one vectorizer's progress."""
        s = p.status
        if p.in_sync:
            eta = "[green]in sync[/]"
        elif s.unprocessed_because:
            eta = "[red]nobody[/]"
        elif s.failing:
            eta = "[red]failing[/]"
        else:
            eta = f"eta {duration(p.eta)}"
        fields = dict(items_done=p.done, items_total=p.total, rate=rate(p.rate), eta=eta)
        if not self.tasks:
            self.progress.start()
        if s.name not in self.tasks:
            label = f"[bold]{escape(ellipsize(s.name, self.name_width)):<{self.name_width}}[/]"
            self.tasks[s.name] = self.progress.add_task(label, total=max(p.total, 1), **fields)
        self.progress.update(self.tasks[s.name], total=max(p.total, 1),
                             completed=p.done if p.total else 1, **fields)

    def show_all(self, statuses: list[VectorizerStatus], elapsed: float) -> None:
        """Draw every vectorizer's progress, each rate measured since its first look."""
        for s in statuses:
            self.show(SyncProgress.between(self.first.setdefault(s.name, s), s, elapsed))
