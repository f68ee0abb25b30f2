"""Operator input: remote-controller buttons and keyboard keys become safety events, sticks a command.

Remote bindings come from configs/deploy/<robot>.yaml (`remote.bindings`): a button name or a
combination such as `L1+R1`, mapped to an event. An event fires once, on the press (the moment the
combination becomes held); when several fire at once, a combination beats the buttons inside it.

Sticks give the velocity command as unitree_rl_gym's deploy does (left stick forward: +vx, left
stick left: +vy, right stick left: +yaw rate), scaled to the ranges the policy was trained on.

Keys (on a terminal, no Enter needed): s start, p policy, h stand (back to HOLD), d damp,
z passive (zero torque), e or space estop, q quit; i/k vx +/-, j/l yaw rate +/-, u/o vy +/-,
m zero command. With keyboard=true on a pipe, whole lines (`start`, `policy`, ...) work too.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robolearn.deploy.messages import BUTTONS, RemoteState
from robolearn.deploy.safety import OPERATOR_EVENTS, Event
from robolearn.errors import UserError, close_matches

QUIT = "quit"
KEY_EVENTS: dict[str, str] = {
    "s": "start",
    "p": "policy",
    "h": "stand",
    "d": "damp",
    "z": "passive",
    "e": "estop",
    " ": "estop",
    "q": QUIT,
}
KEY_COMMANDS: dict[str, tuple[int, float]] = {
    "i": (0, 0.1),
    "k": (0, -0.1),
    "u": (1, 0.1),
    "o": (1, -0.1),
    "j": (2, 0.2),
    "l": (2, -0.2),
}
EVENT_NAMES = {e.value: e for e in OPERATOR_EVENTS}


def parse_bindings(bindings: Mapping[str, str]) -> list[tuple[frozenset[str], Event]]:
    """[(buttons, event)] from config bindings; UserError naming an unknown button or event."""
    parsed = []
    for combo, name in bindings.items():
        buttons = frozenset(b.strip() for b in str(combo).split("+"))
        for b in buttons:
            if b not in BUTTONS:
                raise UserError(
                    f"remote binding '{combo}': unknown button '{b}'{close_matches(b, BUTTONS)}; buttons: {', '.join(BUTTONS)}"
                )
        if name not in EVENT_NAMES:
            raise UserError(
                f"remote binding '{combo}: {name}': unknown event{close_matches(str(name), EVENT_NAMES)}; events: {', '.join(sorted(EVENT_NAMES))}"
            )
        parsed.append((buttons, EVENT_NAMES[name]))
    return parsed


def stick_to_command(value: float, low: float, high: float, deadband: float) -> float:
    """Map a stick in [-1, 1] to [low, high] (0 at the centre), with a deadband."""
    v = float(np.clip(value, -1.0, 1.0)) if np.isfinite(value) else 0.0
    if abs(v) < deadband:
        return 0.0
    return v * high if v > 0 else -v * low


class OperatorInput:
    """Collects operator events (thread-safe) and the current velocity command."""

    def __init__(
        self,
        bindings: Mapping[str, str],
        command_ranges: Sequence[tuple[float, float]],
        deadband: float = 0.05,
        remote_enabled: bool = True,
    ) -> None:
        self.bindings = parse_bindings(bindings)
        self.ranges = [(float(lo), float(hi)) for lo, hi in command_ranges]
        self.deadband = float(deadband)
        self.remote_enabled = remote_enabled
        self.events: deque[tuple[Event | str, str]] = deque()
        self.command = np.zeros(3)
        self._held: frozenset[str] = frozenset()
        self._last_remote = b""
        self._keyboard_command = np.zeros(3)
        self._remote_command = np.zeros(3)

    def set_command(self, command: Sequence[float]) -> None:
        """A scripted velocity command (sim2sim, tests): vx, vy, yaw rate, clipped to the policy's ranges."""
        lo, hi = np.array(self.ranges).T
        self._keyboard_command = np.clip(np.asarray(command, dtype=np.float64), lo, hi)
        self.command = self._remote_command + self._keyboard_command

    def push(self, event: Event | str, source: str) -> None:
        """Queue an event (an Event, or QUIT) from any thread."""
        self.events.append((event, source))

    def update_remote(self, remote: bytes) -> None:
        """Read the 40 wireless_remote bytes of the newest state: button presses and sticks."""
        if not self.remote_enabled or not remote or remote == self._last_remote:
            return
        self._last_remote = remote
        state = RemoteState.from_bytes(remote)
        held = state.buttons
        fired = [(b, e) for b, e in self.bindings if b <= held and not b <= self._held]
        for buttons, event in fired:
            if not any(buttons < other for other, _ in fired):
                self.push(event, "remote " + "+".join(sorted(buttons)))
        self._held = held
        r = self.ranges
        self._remote_command = np.array(
            [
                stick_to_command(state.ly, r[0][0], r[0][1], self.deadband),
                stick_to_command(-state.lx, r[1][0], r[1][1], self.deadband),
                stick_to_command(-state.rx, r[2][0], r[2][1], self.deadband),
            ]
        )
        self.command = self._remote_command + self._keyboard_command

    def key(self, ch: str) -> None:
        """Handle one key press or one line."""
        text = ch.strip().lower() if len(ch) > 1 else ch.lower()
        if text in EVENT_NAMES or text == QUIT:
            self.push(EVENT_NAMES.get(text, text), "keyboard")
        elif text in KEY_EVENTS:
            name = KEY_EVENTS[text]
            self.push(EVENT_NAMES.get(name, name), "keyboard")
        elif text in KEY_COMMANDS:
            axis, step = KEY_COMMANDS[text]
            lo, hi = self.ranges[axis]
            self._keyboard_command[axis] = float(np.clip(self._keyboard_command[axis] + step, lo, hi))
            self.command = self._remote_command + self._keyboard_command
        elif text == "m":
            self._keyboard_command[:] = 0.0
            self.command = self._remote_command.copy()


class KeyboardReader:
    """A daemon thread feeding stdin to an OperatorInput: single keys on a terminal, lines on a pipe."""

    def __init__(self, operator: OperatorInput) -> None:
        self.operator = operator
        self._saved: Any = None
        self._thread = threading.Thread(target=self._run, name="keyboard", daemon=True)

    def start(self) -> None:
        """Begin reading; on a terminal, switch it to unbuffered single-key input."""
        if sys.stdin.isatty():
            import termios
            import tty

            fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        self._thread.start()

    def _run(self) -> None:
        tty = self._saved is not None
        fd = sys.stdin.fileno()
        while True:
            try:
                data = os.read(fd, 1) if tty else sys.stdin.readline().encode()
            except (OSError, ValueError):
                return
            if not data:
                return
            self.operator.key(data.decode(errors="replace"))

    def stop(self) -> None:
        """Restore the terminal."""
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None
