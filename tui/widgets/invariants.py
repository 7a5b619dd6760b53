"""Invariants, pass or fail, at the moment shown.

Mid-run an invariant speaks of *now* (amber when it does not hold yet,
dimmed while it can only be decided at the end); after healing and
quiescence the run's verdict is green or red, as ``syncbed run`` prints it.
Choosing a failing invariant jumps to the flow its violation names.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ..samples import InvariantResult
from ..session import Session

__all__ = ["InvariantsPanel"]


class InvariantsPanel(OptionList):
    class Chosen(Message):
        def __init__(self, result: InvariantResult) -> None:
            super().__init__()
            self.result = result

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.results: tuple[InvariantResult, ...] = ()
        self._shown: tuple | None = None
        self.border_title = "Invariants"

    def sync(self) -> None:
        sample = self.session.sample()
        verification = self.session.verification()
        results = sample.invariants if sample is not None else ()
        final = sample is not None and sample.final
        self._titles(sample, verification)
        key = (results, final, sample.error if sample else None, verification)
        if key == self._shown:
            return
        self._shown = key
        self.results = results
        highlighted = self.highlighted
        self.clear_options()
        if verification is not None and verification.state in ("running", "diverged", "unavailable"):
            icon = {"running": "…", "diverged": "⚠", "unavailable": "–"}[verification.state]
            what = verification.detail or "re-running the recorded world to check it"
            self.add_option(Option(Text(f"{icon} {what}", style="#ffaf00" if verification.state == "diverged" else "#8a8a8a"),
                                   id="verification", disabled=True))
        if sample is None:
            self.add_option(Option(Text("no sample of the world yet", style="#8a8a8a"), disabled=True))
        elif sample.error:
            self.add_option(Option(Text(f"could not check now: {sample.error}", style="#ffaf00"), disabled=True))
        width = max(12, self.scrollable_content_region.width - 3)
        for k, r in enumerate(results):
            self.add_option(Option(self._prompt(r, final, width), id=f"inv-{k}"))
        if highlighted is not None and highlighted < self.option_count:
            self.highlighted = highlighted

    def _titles(self, sample, verification) -> None:
        results = sample.invariants if sample is not None else ()
        final = sample is not None and sample.final
        failed = sum(1 for r in results if r.ok is False)
        passed = sum(1 for r in results if r.ok)
        bad = "✗" if final else "⚠"
        state = f"{failed} {bad}" if failed else "all ✓" if results and passed == len(results) else f"{passed} ✓"
        self.border_title = f"Invariants {state}" + (" · verdict" if final else "")
        when = "" if sample is None or final else f"as of {self.session.clock.short(sample.t)[:5]}"
        mark = "trace verified" if verification is not None and verification.state == "matched" else ""
        self.border_subtitle = " · ".join(x for x in (when, mark) if x)

    def on_resize(self) -> None:
        self._shown = None
        self.sync()

    @staticmethod
    def _prompt(r: InvariantResult, final: bool, width: int) -> Text:
        if r.ok is None:
            text = Text(f"… {r.name}", style="#8a8a8a")
        elif r.ok:
            text = Text.assemble(("✓ ", "bold #5fd787"), r.name)
        else:
            colour = "#ff5f5f" if final else "#ffaf00"
            text = Text.assemble(("✗ " if final else "⚠ ", f"bold {colour}"), (f"({len(r.violations)}) ", colour),
                                 (r.name, colour))
        text.truncate(width, overflow="ellipsis")
        return text

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        oid = event.option.id or ""
        if oid.startswith("inv-"):
            self.post_message(self.Chosen(self.results[int(oid[4:])]))
