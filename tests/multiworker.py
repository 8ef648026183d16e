"""Run a fine-tuning job on several worker processes with ``MultiWorkerMirroredStrategy``.

    ports = free_ports(2)
    results = launch([sys.executable, "mw_job.py", config_json], ports, timeout=120)

Each worker is a separate process with its own ``TF_CONFIG``::

    {"cluster": {"worker": ["localhost:P1", "localhost:P2"]}, "task": {"type": "worker", "index": i}}

(on several machines: the same ``cluster`` list with each machine's ``host:port`` — every worker gets
the identical list and its own ``index``; worker 0 is the chief).  ``TF_CONFIG`` must be in the
environment before the strategy is created; the workers block in the strategy's first collective
until all of them are up, so they are started together and waited for together.

Helpers for the job side: ``strategy()``, ``distributed(x, y, global_batch, seed)`` (a tf.data
pipeline with DATA auto-sharding and a global batch, the same element order on every worker),
``is_chief()``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on localhost (bound and released: a small race remains)."""
    sockets, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("localhost", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def tf_config(hosts: Sequence[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": list(hosts)}, "task": {"type": "worker", "index": index}})


@dataclass
class WorkerResult:
    index: int
    returncode: int | None
    stdout: str
    stderr: str


def launch(argv: Sequence[str], ports: Sequence[int], timeout: float = 120.0,
           env: dict[str, str] | None = None) -> list[WorkerResult]:
    """Start one process per port with its TF_CONFIG; wait for all (kill all on timeout or first failure)."""
    hosts = [f"localhost:{p}" for p in ports]
    procs = []
    for i in range(len(ports)):
        worker_env = {**os.environ, **(env or {}), "TF_CONFIG": tf_config(hosts, i)}
        procs.append(subprocess.Popen(list(argv), env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [WorkerResult(i, p.wait(), *p.communicate()) for i, p in enumerate(procs)]


# ------------------------------------------------------------------ job side


def strategy():
    """MultiWorkerMirroredStrategy with ring all-reduce (the CPU implementation)."""
    from tfopt import _tf

    tf = _tf.tf()
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_chief() -> bool:
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    return task.get("type", "worker") in ("chief", "worker") and int(task.get("index", 0)) == 0 and (
        "chief" not in config.get("cluster", {}) or task.get("type") == "chief")


def distributed(x: np.ndarray, y: np.ndarray, global_batch: int, seed: int, epochs: int):
    """A tf.data pipeline every worker builds identically: seeded shuffle each epoch, global batches,
    DATA auto-sharding (each worker takes its slice of every global batch; numpy data has no files
    to shard, and the default AUTO policy would warn and fall back to DATA anyway)."""
    from tfopt import _tf

    tf = _tf.tf()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat(epochs)
    ds = ds.batch(global_batch, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.experimental_deterministic = True
    return ds.with_options(options)
