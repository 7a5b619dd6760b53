"""The real thing: `syncbed tui` in a real terminal (tmux), driven by keys."""

import os
import shutil
import subprocess
import time

import pytest

from .helpers import ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, tmp_path):
        self.socket = f"syncbed-tui-test-{os.getpid()}"
        self.session = "tui"
        self.tmux("new-session", "-d", "-s", self.session, "-x", "100", "-y", "30", "sh")

    def tmux(self, *args) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20)
        return out.stdout

    def keys(self, *keys) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def wait(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen shows:\n{screen}")
            time.sleep(0.1)

    def close(self):
        self.tmux("kill-server")


@pytest.fixture
def terminal(tmp_path):
    t = Terminal(tmp_path)
    yield t
    t.close()


def test_syncbed_tui_in_a_real_terminal(terminal):
    terminal.keys(f"cd {ROOT} && .venv/bin/syncbed tui quote-to-cash --seed 1; echo EXIT=$?", "Enter")
    screen = terminal.wait("LIVE")
    assert "Topology" in screen and "SYNC CORE" in screen and "Invariants" in screen
    screen = terminal.wait("paused")
    events = int(screen.split(" ev ", 1)[1].split()[0])
    terminal.keys(".")  # step one event
    terminal.wait(f"ev {events + 1} ")
    terminal.keys("Space")  # play
    terminal.wait("playing")
    terminal.keys("Space")  # pause
    terminal.wait("paused")
    terminal.keys("f")  # the flows
    terminal.wait("Flows")
    terminal.keys("Enter")  # the first one
    screen = terminal.wait("Flow deal:")
    assert "CORE" in screen and "time" in screen
    terminal.keys("Escape")
    terminal.wait("Topology")
    terminal.keys("q")  # quit
    screen = terminal.wait("EXIT=0")
    # the terminal is left as it was found: the main screen, a visible cursor, no UI
    assert terminal.tmux("display-message", "-p", "-t", terminal.session, "#{alternate_on} #{cursor_flag}").split() == ["0", "1"]
    assert "Topology" not in screen and "SYNC CORE" not in screen


def test_bad_input_is_one_message_and_status_2_before_the_ui(tmp_path, capsys):
    from harness.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "csv"}\n')
    out = subprocess.run([str(ROOT / ".venv/bin/syncbed"), "tui", "--trace", str(bad)], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == f"syncbed: error: trace file {bad}, line 1: not a syncbed trace header (format is 'csv', " \
                         "expected 'syncbed-trace')\n"
    for args in (["tui", "no-such-scenario"], ["tui", "--trace", str(tmp_path / "nope")],
                 ["tui", "quote-to-cash", "--trace", str(bad)], ["tui", "--chaos", "nope"],
                 ["tui", "--core", "no.such:core"], ["tui", "--seed", "-1"]):
        assert main(args) == 2, args
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert captured.out == "" and len(lines) == 1 and lines[0].startswith("syncbed: error: "), captured.err
