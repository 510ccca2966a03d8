"""Progress for people: bars on a terminal, and plain lines (or nothing) anywhere else."""

from __future__ import annotations

import io
import re

from controller.cli.terminal import HashingProgress, ProgressDisplay
from controller.domain.progress import ModelProgress

MB = 1_000_000
_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress(done: int, total: int, files_done: int = 0) -> ModelProgress:
    return ModelProgress(bytes_done=done, bytes_total=total, files_done=files_done, files_total=3)


def screen(output: str) -> list[str]:
    """The lines a terminal shows after ``output``: carriage returns, newlines, erasing a
    line and moving up are played; colours and cursor visibility are dropped."""
    lines = [""]
    row = col = 0
    for part in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", output):
        if part == "\r":
            col = 0
        elif part == "\n":
            row, col = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif (csi := _CSI.fullmatch(part)) is not None:
            if csi.group(2) == "K":
                lines[row] = ""
            elif csi.group(2) == "A":
                row -= int(csi.group(1) or 1)
        elif part:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + part + line[col + len(part) :]
            col += len(part)
    return [line.rstrip() for line in lines if line.strip()]


def test_on_a_terminal_running_bars_are_redrawn_and_finished_ones_printed_above() -> None:
    tty = io.StringIO()
    display = ProgressDisplay(tty, tty=True)
    display({"m": progress(5 * MB, 10 * MB)})
    assert re.fullmatch(r"m +\S+ +50% of 10\.0 MB \(0/3 files\)", screen(tty.getvalue())[-1])

    display({"m": progress(5 * MB, 10 * MB), "[b]": progress(0, MB)})
    display({"m": progress(10 * MB, 10 * MB, 3), "[b]": progress(MB // 4, MB)})
    display({"m": progress(10 * MB, 10 * MB, 3), "[b]": progress(MB // 2, MB)})
    display.close()

    shown = screen(tty.getvalue())
    assert shown[0] == "m: 3 files, 10.0 MB on disk"  # once, above the bars
    assert len(shown) == 2, shown  # and only the unfinished bar below it
    assert re.fullmatch(r"\[b\] +\S+ +50% of 1\.0 MB \(0/3 files\)", shown[1])


def test_off_a_terminal_a_line_per_model_every_ten_seconds_and_one_when_complete() -> None:
    clock = Clock()
    plain = io.StringIO()
    display = ProgressDisplay(plain, tty=False, monotonic=clock)
    for second in range(12):
        clock.now = second
        display({"m": progress(second, 100)})
    display({"m": progress(100, 100, 3)})
    display({"m": progress(100, 100, 3)})
    display.close()
    assert plain.getvalue().splitlines() == [
        "m: 0% of 100 B (0/3 files)",
        "m: 10% of 100 B (0/3 files)",
        "m: 3 files, 100 B on disk",
    ]
    assert "\x1b" not in plain.getvalue() and "\r" not in plain.getvalue()


def test_hashing_shows_a_bar_on_a_terminal_and_nothing_elsewhere() -> None:
    tty = io.StringIO()
    with HashingProgress(tty, tty=True) as hashing:
        hashing(4 * MB, 10 * MB)
        assert re.fullmatch(r"verifying +\S+ +40\.0% of 10\.0 MB", screen(tty.getvalue())[-1])
        hashing(10 * MB, 10 * MB)
    assert re.fullmatch(r"verifying +\S+ +100\.0% of 10\.0 MB", screen(tty.getvalue())[-1])
    # What verify prints next starts on a line of its own.
    assert _CSI.sub("", tty.getvalue()).endswith("\n")
    plain = io.StringIO()
    with HashingProgress(plain, tty=False) as hashing:
        hashing(4 * MB, 10 * MB)
    assert plain.getvalue() == ""
