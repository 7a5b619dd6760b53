"""Help: what the screen shows and every key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from rich.markdown import Markdown
from textual.widgets import Label, Static

__all__ = ["HelpScreen", "HELP"]

HELP = """\
## Watching

The **clock bar** shows the virtual date and time, whether the world plays,
the speed (virtual time per wall second) and how many events have happened.

The **topology** is the sync core and the systems it connects. On each link:
exchanges waiting for an answer (⇄) and the error rate over the last virtual
hour. A partitioned link is a red line of ╳; a system in an outage or a
crashed process is a red block. Below: the faults in force now and the
faults fired so far.

**Invariants** hold (✓), do not hold *now* (⚠, mid-run), fail the run (✗,
after healing and quiescence) or wait for the end (…). Enter on a failing
invariant opens the flow its violation names. **KPIs** show their value and
a sparkline over virtual time.

## Keys

| key | does |
|---|---|
| `space` | play / pause |
| `.` | step one event |
| `n` | run to the next business event (a record changed, a core decision) |
| `+` `-` | faster / slower |
| `g` | seek to a moment: `2026-01-15 14:00`, `+2h30m`, `-1d`, `day 12` |
| `b` | step back one event (replay) |
| `f` | flows: pick a deal, project, invoice or correlation id |
| `x` | chaos (live): partition a link, take a system down, slow it, crash the core |
| `d` | the dead-letter queue; `r` replays the selected dead letter (or retries an exception) |
| `/` | filter the event log |
| `enter` | open the selected event's payload (log, flow diagram) or a flow (queues) |
| `ctrl+p` | command palette: every action |
| `?` | this help |
| `q` | quit |

## The event log filter

`system:erp` (or `sys:`; `src:` and `dst:` for one direction), `kind:fault`, `corr:deal:0P1`, `is:business`,
`is:fault`, `is:core`; any other word matches kinds, actors and correlation
ids; `-word` leaves out what a word matches (`-kind:net`).

## Flows

A flow is everything that happened under one correlation id
(`deal:<Opportunity Id>`, `te:<time entry>`), plus the uncorrelated events
of the records it names. The diagram draws requests as solid arrows,
responses dashed (green 2xx, amber 4xx, red 5xx/429), lost messages ending
in ✕, duplicates (2×), timeouts (⊘), retries (↻) and dead letters (✗), each
with its virtual time. `tab` switches between the list and the diagram.

## Replays

`syncbed tui --trace FILE` plays a recorded run back, and seeks both ways.
It re-runs the recorded world in the background to show its invariants,
KPIs and queues, and checks the re-run writes the very same trace.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("syncbed — help", classes="dialog-title")
            with VerticalScroll():
                yield Static(Markdown(HELP), id="help-text")
            yield Label("esc close", classes="hint")
