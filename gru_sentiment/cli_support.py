"""What every `gru-sentiment` command shares: its consoles, its one-line errors, its device, the default model.

Only the command modules (`cli`, `cli_train`, ...) use these; library modules never talk to the terminal.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer

from gru_sentiment.api import DEFAULT_MODEL_NAME, default_model_dir  # noqa: F401  (the library's, public here too)
from gru_sentiment.errors import UserError
from gru_sentiment.options import Device


def command_line() -> str:
    """The command as the user typed it, recorded in the models and encoders it writes."""
    return " ".join(["gru-sentiment", *sys.argv[1:]])


def err_console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def out_console(quiet: bool = False):
    from gru_sentiment.render import stdout_console

    return stdout_console(quiet)


@contextmanager
def user_errors(ctx: typer.Context):
    """Turn library errors into one line on stderr and an exit code; --debug shows the traceback."""
    from rich.markup import escape

    debug = bool(ctx.obj and ctx.obj.get("debug"))
    try:
        yield
    except UserError as exc:
        if debug:
            raise
        err_console().print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console().print("[yellow]interrupted[/yellow]")
        raise typer.Exit(130) from None
    except BrokenPipeError:
        silence_closed_stdout()
        raise typer.Exit(PIPE_CLOSED) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        err_console().print(
            f"[red]error:[/red] {type(exc).__name__}: {escape(message)} (run with --debug for details)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


PIPE_CLOSED = 141  # 128 + SIGPIPE: the status a shell reports for a Unix tool whose reader went away


def silence_closed_stdout() -> None:
    """The reader of stdout went away (`| head`): point stdout at /dev/null, so that nothing more goes, or is
    flushed at exit, into the closed pipe; the command then stops quietly with PIPE_CLOSED, as Unix tools do."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def setup_device(device: Device, threads: int | None, local_rank: int | None = None):
    import torch

    from gru_sentiment.api import select_device

    if threads:
        torch.set_num_threads(threads)
    chosen = select_device(device.value, "--device")
    if chosen.type == "cuda" and local_rank is not None:  # one GPU per torchrun process
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return chosen


def refuse_to_replace(output: Path, overwrite: bool) -> None:
    """A command that writes a model directory never replaces one unless asked to."""
    from gru_sentiment.errors import UsageError

    if output.exists() and not overwrite:
        raise UsageError(f"{output} already exists: pass --overwrite to replace it")


def typed(ctx: typer.Context, name: str) -> bool:
    """Whether the option `name` was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)  # typer may vendor click: compare the name, not the enum
    return source is not None and source.name == "COMMANDLINE"


def training_progress(console, title: str, val_label: str):
    """A progress bar for train or pretrain, its task, and the `on_step` callback that moves it (tokens/s
    smoothed over steps). The bar shows from the first step on: nothing of it stands above an error in the data."""
    from gru_sentiment import render

    progress = render.training_progress(console, title, val_label)
    task = progress.add_task(title, total=None, epoch=1, loss=0.0, val="-", tps=0.0, visible=False)
    smoothed = {"tps": 0.0}
    interrupted = _remember_interrupts()

    def on_step(info):
        interrupted()
        smoothed["tps"] = info.tokens_per_s if not smoothed["tps"] else 0.9 * smoothed["tps"] + 0.1 * info.tokens_per_s
        progress.update(
            task,
            completed=info.step,
            total=info.total_steps,
            epoch=info.epoch,
            loss=info.loss,
            tps=smoothed["tps"],
            visible=True,
        )

    return progress, task, on_step


def _remember_interrupts():
    """Ctrl-C raises KeyboardInterrupt wherever Python is; raised inside a finalizer (a generator the garbage
    collector closes) it is printed and lost, and training would go on. The handler installed here also
    remembers it, and the function returned raises it again (call it at every step): an interrupt always stops
    training. Installed only from the main thread, where Python runs signal handlers."""
    import signal
    import threading

    seen: list[int] = []

    def handler(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)

    def check() -> None:
        if seen:
            raise KeyboardInterrupt

    return check


def load_model(model: Path | None, device):
    from gru_sentiment import api

    return api.load(model, device).bundle
