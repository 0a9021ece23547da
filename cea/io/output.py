"""Output folders: written in a temporary sibling folder and moved into place when complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from cea.errors import CeaError

DEFAULT_OUTPUTS = Path("outputs")


#: Output folders this process has moved into place (the CLI names them if interrupted later).
COMMITTED: list[Path] = []

#: The inputs of this run (the inputs folder or workbook, a scenario file): ``--force`` never
#: replaces a folder that holds one. Set by the CLI for each command.
INPUTS: list[Path] = []


#: The file every output folder holds: ``--force`` replaces only a folder that has it, so a
#: folder cea did not write (the inputs, a folder holding them, the current folder) is never
#: replaced.
MARKER = ".cea-output"


def check_replaceable(target: Path) -> None:
    """Refuse, in one line, to replace ``target`` with ``--force`` unless it is an output
    folder cea wrote."""
    where = str(target)
    if target.is_symlink():
        raise CeaError(f"--force will not replace {where}: it is a symbolic link")
    if not target.is_dir():
        raise CeaError(f"--force will not replace {where}: it is a file, not an output folder")
    if target.resolve() == Path.cwd().resolve():
        raise CeaError(f"--force will not replace {where}: it is the current folder")
    if not (target / MARKER).is_file():
        raise CeaError(
            f"--force will not replace {where}: cea did not write it (no {MARKER} in it); "
            "choose another --out"
        )
    for given in INPUTS:  # a user may put the inputs into an output folder of cea's
        if given.exists() and given.resolve().is_relative_to(target.resolve()):
            raise CeaError(
                f"--force will not replace {where}: it holds {given}, an input of this run"
            )


@contextlib.contextmanager
def interrupts_deferred():
    """Hold Ctrl-C (SIGINT) while an output is moved into place and recorded in
    :data:`COMMITTED`, then deliver it: an interrupt never lands between the move and the
    record, so the CLI's line ("interrupted after the output was complete" or "no output
    written") is always true and no temporary or old folder is left behind. Outside the main
    thread (where Python cannot set a handler) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, None)


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputDir:
    """Write into a temporary sibling folder; move it into place on success only.

    An existing target is refused unless ``force``; with ``force`` it is replaced, only after
    the new output is complete, and only if it is an output folder cea wrote
    (:func:`check_replaceable`). Every output folder holds the :data:`MARKER` file.
    """

    def __init__(self, target: Path, force: bool = False):
        self.target = Path(os.path.abspath(target))  # "..", "." resolved to a real name
        self.force = force
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        if self.target.exists() or self.target.is_symlink():
            if not self.force:
                raise CeaError(
                    f"output folder {self.target} already exists: use --force to replace it, "
                    "or --out"
                )
            check_replaceable(self.target)
        for folder in self.target.parents:
            if folder.exists() and not folder.is_dir():
                raise CeaError(f"cannot write {self.target}: {folder} is a file, not a folder")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-", dir=self.target.parent)
        )
        try:
            os.chmod(self.tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: respect the umask
            (self.tmp / MARKER).write_text("written by cea; cea --force may replace this folder\n")
        except OSError:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        with interrupts_deferred():
            return self._exit(exc_type, exc)

    def _exit(self, exc_type, exc):
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                # a write into the folder failed (full disk, ...): name the output folder
                reason = exc.strerror or type(exc).__name__
                raise CeaError(f"cannot write {self.target}: {reason}") from None
            return False
        if not self.force:
            # another run may have created the target since __enter__: a directory is renamed
            # only onto a missing or empty one, so that run's output is never replaced
            try:
                os.rename(self.tmp, self.target)
            except OSError:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise CeaError(
                    f"output folder {self.target} was created by another run while this one was "
                    "running: nothing written; use --force to replace it, or --out"
                ) from None
            COMMITTED.append(self.target)
            return False
        old = None
        if self.target.exists() or self.target.is_symlink():
            try:
                check_replaceable(self.target)  # still an output folder of cea's
            except CeaError:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        COMMITTED.append(self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return False


class OutputFile:
    """One output file written under a temporary name beside it and moved into place on
    success only; an existing file is refused unless ``force``."""

    def __init__(self, target: Path, force: bool = False):
        self.target = Path(target)
        self.force = force
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        if self.target.is_symlink() or self.target.is_dir():
            kind = "a symbolic link" if self.target.is_symlink() else "a folder"
            raise CeaError(f"{self.target} is {kind}: not replaced; choose another --out")
        if self.target.exists() and not self.force:
            raise CeaError(f"{self.target} already exists: use --force to replace it")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=self.target.suffix, dir=self.target.parent
        )
        os.close(fd)
        self.tmp = Path(tmp)
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes it 0600: respect the umask
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        assert self.tmp is not None
        with interrupts_deferred():
            try:
                if exc_type is None:
                    os.replace(self.tmp, self.target)
                    COMMITTED.append(self.target)
            finally:
                if self.tmp.exists():
                    self.tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            # the write failed (full disk, ...): name the file, not the temporary name
            reason = exc.strerror or type(exc).__name__
            raise CeaError(f"cannot write {self.target}: {reason}") from None
        return False
