"""Virtualenvs holding one dbt-core minor each, cached outside the clone so re-runs reuse them.

Each venv lives in `${QALITA_COMPAT_CACHE:-~/.cache/qalita-compat}/dbt-<minor>-<key>`, the key being
a hash of the interpreter version and the requirement set: change a pin and a new venv is built,
keep it and the old one is reused. dbt and its adapters come from the package index through uv
when the test venv has it (`make install` puts it there; a venv builds in seconds instead of about
25 s), else through pip; the sidecar goes into the dbt 1.9 venv with that venv's own pip, as a
user beside their dbt would install it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

CACHE = Path(os.environ.get("QALITA_COMPAT_CACHE") or Path.home() / ".cache" / "qalita-compat")
REPO = Path(__file__).resolve().parents[2]
SIDECAR = REPO / "sidecar"
READY = ".qalita-compat-ready"  # written last: a venv without it is half-built and rebuilt


@dataclass(frozen=True)
class DbtVersion:
    """One dbt-core minor: the interpreter it runs on and what pip installs for it."""

    minor: str
    python: str  # "3.9": dbt-core 1.0-1.4 do not run on the newest interpreters
    adapters: tuple[str, ...]
    requirements: tuple[str, ...]
    # installed afterwards with --no-deps: dbt-core 1.12 requires dbt-core-experimental-parser,
    # whose build downloads a binary from outside the package index (it fails here)
    no_deps: tuple[str, ...] = ()
    # then `pip install ./sidecar[duckdb,postgres]` into it, as a user beside their dbt would
    with_sidecar: bool = False

    @property
    def with_qalita(self) -> bool:
        """The qalita package requires dbt >= 1.8 (dbt_qalita/dbt_project.yml)."""
        major, minor = (int(p) for p in self.minor.split("."))
        return (major, minor) >= (1, 8)


def _version(minor: str, python: str, adapters: tuple[str, ...], *pins: str) -> DbtVersion:
    reqs = (f"dbt-core=={minor}.*", *(f"dbt-{a}=={minor}.*" for a in adapters), *pins)
    return DbtVersion(minor, python, adapters, reqs)


# Pins older releases need because their own requirement ranges let pip pick libraries released
# later that they do not work with.
# dbt 1.0 imports pytz without declaring it (agate used to bring it in).
_OLD = ("MarkupSafe<2.1", "pytz")
VERSIONS: dict[str, DbtVersion] = {
    "1.0": _version("1.0", "3.9", ("postgres",), *_OLD),
    "1.1": _version("1.1", "3.9", ("postgres",), *_OLD),
    "1.2": _version("1.2", "3.10", ("postgres",)),
    "1.3": _version("1.3", "3.10", ("postgres",)),
    "1.4": _version("1.4", "3.10", ("postgres",)),
    "1.5": _version("1.5", "3.11", ("postgres",)),
    "1.6": _version("1.6", "3.11", ("postgres",)),
    "1.7": _version("1.7", "3.11", ("postgres",)),
    "1.8": _version("1.8", "3.11", ("duckdb", "postgres")),
    # the venv a user with dbt 1.9 has, then the sidecar installed into it
    "1.9": replace(_version("1.9", "3.11", ("duckdb", "postgres")), with_sidecar=True),
    "1.10": _version("1.10", "3.11", ("duckdb", "postgres")),
    "1.11": _version("1.11", "3.11", ("duckdb", "postgres")),
    # no adapter 1.12 exists: the 1.11 adapters with dbt-core 1.11 (left alone, pip would pick
    # 1.12 for them and fail), then dbt-core 1.12 over it without its deps
    "1.12": DbtVersion("1.12", "3.11", ("duckdb", "postgres"),
                       ("dbt-core==1.11.*", "dbt-duckdb==1.11.*", "dbt-postgres==1.11.*",
                        "daff>=1.3.46",
                        "metricflow>=0.213.0,<1.0", "opentelemetry-api>=1.26,<2.0",
                        "protobuf>=6.0,<8.0", "python-dotenv>=1.2", "sqlparse>=0.5.5,<0.7"),
                       no_deps=("dbt-core==1.12.*",)),
}


class Unavailable(Exception):
    """This dbt minor cannot be had on this machine; the message says why."""


def find_python(version: str) -> Path:
    """An interpreter of `version`: $QALITA_COMPAT_PYTHON_3_9, then pyenv's, then PATH's."""
    override = os.environ.get(f"QALITA_COMPAT_PYTHON_{version.replace('.', '_')}")
    if override:
        return Path(override)
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return Path(sys.executable)
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = sorted(pyenv.glob(f"{version}.*/bin/python"),
                   key=lambda p: int(p.parent.parent.name.split(".")[2].split("-")[0] or 0))
    if found:
        return found[-1]
    on_path = shutil.which(f"python{version}")
    if on_path:
        return Path(on_path)
    raise Unavailable(f"no Python {version} here (set QALITA_COMPAT_PYTHON_"
                      f"{version.replace('.', '_')} to one)")


@dataclass(frozen=True)
class Venv:
    path: Path
    version: DbtVersion
    python_version: str
    built: bool = False  # False: reused from the cache
    seconds: float = 0.0  # to build it, or to find it and refresh the sidecar in it

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def dbt_version(self) -> str:
        """The dbt-core version installed (what `pip show dbt-core` says)."""
        return self.distribution_version("dbt-core")

    def distribution_version(self, name: str) -> str:
        proc = subprocess.run([str(self.bin / "python"), "-m", "pip", "show", name],
                              capture_output=True, text=True)
        found = re.search(r"^Version: (\S+)", proc.stdout, re.M)
        if proc.returncode != 0 or not found:
            raise AssertionError(f"pip show {name} in {self.path} found nothing: "
                                 f"{(proc.stderr or proc.stdout).strip()}")
        return found.group(1)

    def freeze(self, name: str) -> dict[str, str]:
        """A pip freeze recorded while building: "before-sidecar" / "after-sidecar"."""
        return json.loads((self.path / f"freeze-{name}.json").read_text())


def _interpreter_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


UV = Path(sys.executable).parent / "uv"


def _pip(venv: Path, *args: str, log: Path) -> None:
    _logged([str(venv / "bin" / "python"), "-m", "pip", *args], "pip", log)


def _install(venv: Path, *args: str, log: Path) -> None:
    """`pip install <args>` into `venv`, by uv when there is one (same resolution, much faster)."""
    if UV.exists():
        _logged([str(UV), "pip", "install", "--compile-bytecode", "--python",
                 str(venv / "bin" / "python"), *args], "uv", log)
    else:
        _pip(venv, "install", *args, log=log)


def _logged(cmd: list[str], name: str, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {name} {' '.join(cmd[1:])}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        raise Unavailable(f"{name} install failed ({proc.returncode}), see {log}:\n"
                          + "\n".join(tail))


def _freeze(venv: Path) -> dict[str, str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                         capture_output=True, text=True, check=True)
    return {p["name"].lower(): p["version"] for p in json.loads(out.stdout)}


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" not in f.parts:
                h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _sidecar_copy(into: Path) -> Path:
    """The sidecar's distribution files, copied: pip builds in the source tree, and the
    checkout's tree is shared (its egg-info belongs to the main venv's editable install)."""
    dest = into / "sidecar"
    shutil.copytree(SIDECAR, dest, ignore=shutil.ignore_patterns(
        "tests", "build", "dist", "*.egg-info", "__pycache__"))
    return dest


def _refresh_sidecar(path: Path, log: Path) -> None:
    """This checkout's sidecar code in the venv: its requirements were installed with the venv
    (the key holds them); the code itself is reinstalled, without deps, when it changed."""
    stamp = path / ".sidecar-code"
    code = _digest(SIDECAR / "qalita_sidecar")
    if stamp.exists() and stamp.read_text() == code:
        return
    with tempfile.TemporaryDirectory(prefix="qalita-compat-sidecar-") as tmp:
        _pip(path, "install", "--quiet", "--no-deps", "--force-reinstall",
             str(_sidecar_copy(Path(tmp))), log=log)
    stamp.write_text(code)


def ensure(version: DbtVersion, cache: Path = CACHE, extra_key: str = "") -> Venv:
    """The cached venv of `version`, built first if it is missing or half-built."""
    started = time.monotonic()
    python = find_python(version.python)
    py_version = _interpreter_version(python)
    spec = {"python": py_version, "requirements": version.requirements,
            "no_deps": version.no_deps, "extra": extra_key}
    if version.with_sidecar:
        # the sidecar's requirement set is part of the key: change it and the venv is rebuilt
        spec["sidecar"] = _digest(SIDECAR / "pyproject.toml")
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    path = cache / f"dbt-{version.minor}{'-' + extra_key if extra_key else ''}-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    built = False
    with (cache / f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs sharing the cache build each venv once
        log = path / "pip.log"
        if not (path / READY).exists():
            built = True
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run([str(python), "-m", "venv", str(path)], check=True)
            _install(path, "--upgrade", "pip", log=log)
            _install(path, *version.requirements, log=log)
            if version.no_deps:
                _install(path, "--no-deps", *version.no_deps, log=log)
            smoke = subprocess.run([str(path / "bin" / "dbt"), "--version"],
                                   capture_output=True, text=True)
            if smoke.returncode != 0:
                raise Unavailable(f"dbt {version.minor} installed but `dbt --version` fails: "
                                  + (smoke.stderr or smoke.stdout).strip().splitlines()[-1])
            if version.with_sidecar:
                # what the user's dbt venv held, then the sidecar with its drivers beside it:
                # the compat suite checks that nothing of the first changed
                (path / "freeze-before-sidecar.json").write_text(json.dumps(_freeze(path)))
                with tempfile.TemporaryDirectory(prefix="qalita-compat-sidecar-") as tmp:
                    _pip(path, "install", f"{_sidecar_copy(Path(tmp))}[duckdb,postgres]", log=log)
                (path / "freeze-after-sidecar.json").write_text(json.dumps(_freeze(path)))
                (path / ".sidecar-code").write_text(_digest(SIDECAR / "qalita_sidecar"))
            (path / "requirements.json").write_text(json.dumps(spec, indent=2) + "\n")
            (path / READY).write_text("")
        elif version.with_sidecar:
            _refresh_sidecar(path, log)
    return Venv(path, version, py_version, built, round(time.monotonic() - started, 1))
