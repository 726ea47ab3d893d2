"""`Predictor` subclasses for tests/test_ray.py, in a module of their own: Ray's workers import them by name."""

import os
import socket
import threading
from pathlib import Path

import numpy as np

from gru_sentiment.ray import Predictor


class WithPid(Predictor):
    """A Predictor whose rows also say which worker process scored them (`pid`)."""

    def __call__(self, batch):
        out = super().__call__(batch)
        out["pid"] = np.full(len(out["label"]), os.getpid())
        return out


class KilledOnce(WithPid):
    """The first worker to get a batch claims `scratch`/claimed, sends its pid to the test over a socket on
    127.0.0.1:`port` and waits, holding its batch, for the test to kill it. Every other worker, and the one Ray
    starts in its place, finds the claim and scores its batches as a `WithPid` does."""

    def __init__(self, *args, scratch: str, port: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.scratch = Path(scratch)
        self.port = port

    def __call__(self, batch):
        try:
            os.close(os.open(self.scratch / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().__call__(batch)
        with socket.create_connection(("127.0.0.1", self.port)) as conn:
            conn.sendall(f"{os.getpid()}\n".encode())
        threading.Event().wait()  # until SIGKILL
        raise AssertionError("not killed")
