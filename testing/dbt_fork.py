"""dbt runs forked from a server process that has already imported dbt.

Before dbt reads a project it spends about 3 s of CPU importing dbt-core and its adapters and
building the JSON schemas it validates against (`dbt_preload`), and the suites start a few hundred
dbt processes. Each run here is a fork of one server that paid that once: still a process of its
own, with its own arguments, environment, working folder, output and exit code, as `dbt` started
from a shell would have. One server per test process and venv (the compatibility suite runs
other dbt versions), started at its first run.

`QALITA_TEST_DBT_FORK=0` starts every run as a fresh interpreter instead, to compare, or to rule the
fork out when a run behaves oddly.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ENABLED = os.environ.get("QALITA_TEST_DBT_FORK", "1") != "0"


class _Server:
    """The client side of one server: one request at a time over its stdin and stdout."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None

    def run(self, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
        with self.lock, tempfile.TemporaryDirectory(prefix="dbt-fork-") as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            request = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(out),
                       "stderr": str(err)}
            proc = self._started()
            assert proc.stdin and proc.stdout
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            reply = proc.stdout.readline()
            if not reply:
                raise RuntimeError(f"the dbt fork server of {self.python} exited ({proc.wait()})")
            return subprocess.CompletedProcess(argv, json.loads(reply)["returncode"],
                                               out.read_text(errors="replace"),
                                               err.read_text(errors="replace"))

    def _started(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            # dbt is imported without the caller's DBT_/QALITA_ settings: a run's settings are
            # those of its own environment only
            env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "QALITA_"))}
            self.proc = subprocess.Popen([self.python, __file__], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env)
        return self.proc

    def stop(self) -> None:
        """End of input ends the server; waiting for it counts its runs' CPU time in ours."""
        if self.proc is not None and self.proc.stdin:
            self.proc.stdin.close()
            self.proc.wait()


_servers: dict[str, _Server] = {}
_servers_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    for server in _servers.values():
        server.stop()


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`argv` (its first element a venv's dbt executable) run in `cwd` with exactly `env`, by
    the server of that venv's Python."""
    if not ENABLED:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    python = str(Path(argv[0]).parent / "python")
    with _servers_lock:
        server = _servers.setdefault(python, _Server(python))
    return server.run(argv, cwd, env)


# ---- the server: runs as `python dbt_fork.py`, never imported by the tests' own process --------

def _child(request: dict) -> None:
    """The forked process becomes `dbt <args>`: its output, folder, environment, then dbt."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, key in ((1, "stdout"), (2, "stderr")):
        target = os.open(request[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    # from here on a failure (a folder that does not exist) is the run's stderr and exit code
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # dbt reads sys.argv itself (the subcommand's flags, `invocation_command`), and looks for
    # plugins among the `dbt_*` modules on sys.path: both as the `dbt` script would see them.
    sys.argv = request["argv"]
    sys.path[0] = os.path.dirname(request["argv"][0])
    from dbt.cli.main import cli

    # Leaves by SystemExit, which ends this process as dbt's own would end: atexit handlers run
    # (DuckDB closes its connections), logs are flushed, dbt's threads are joined.
    cli()


def _serve() -> None:
    import dbt_preload  # noqa: F401  (imported for its effect: dbt imported, schemas built)

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
            raise SystemExit(0)
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
