#!/usr/bin/env python3
"""The one-call GPU check of mp3d: build with CUDA, run the GPU tests, the GPU benchmarks
against the peers and the two quality runs, each stage under its own time limit, and write
one summary. Start it through scripts/gpu_check.sh, whose header says how to run it with
the device tool (command, carry, timeout) and what it reports.

Stages run in this order; a stage that fails or times out never stops the ones after it:

  env            versions, GPU and driver (nvidia-smi queries only: no setting is changed)
  wheels         pip install --no-index --no-deps of .gpu_carry/wheels into a folder of its own
  peers          gsplat and nerfacc compile their CUDA code (in the background, niced, while
                 mp3d builds and its tests run); a peer not ready by its budget is skipped
  build          pip install --no-build-isolation -e . with TORCH_CUDA_ARCH_LIST=9.0, MAX_JOBS
  doctor         mp3d doctor; CUDA kernels built and loaded; sm_90 code in the .so
  pytest         python -m pytest -m gpu
  bench_skinning, bench_hash_encoding, bench_volume_rendering (vs nerfacc),
  bench_gaussians (vs gsplat)          the bench/ scripts at GPU sizes, peers side by side
  quality_nerf, quality_splat          bench/quality_*_lego.py on the full-resolution lego scene,
                 their training minutes sized to what is left of their time limit

Without CUDA (or with --dry-run) it runs the same plumbing on the CPU in under a minute:
the CUDA build and the peers' compile are skipped with a line saying so, and the tests,
benchmarks and quality runs run at tiny CPU sizes, so that every command line is exercised.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Wall-clock budgets in seconds. TOTAL_BUDGET bounds the whole script (the device tool's
# command limit is 600 s; 530 leaves room for its own start-up and for the harness). Each
# stage runs under min(its cap, what is left of the total minus the minimum reserved for the
# stages after it); a stage left less than its minimum is skipped with a line saying so.
TOTAL_BUDGET = 530
CAPS = {  # stage: (cap, minimum)
    "env": (20, 5),
    "wheels": (30, 5),
    "build": (210, 60),
    "doctor": (30, 10),
    "pytest": (100, 20),
    "bench_skinning": (30, 10),
    "bench_hash_encoding": (30, 10),
    "bench_volume_rendering": (45, 15),
    "bench_gaussians": (60, 20),
    "quality_nerf": (100, 45),
    "quality_splat": (100, 45),
}
PEER_BUDGET = 240  # each peer's CUDA compile, counted from its start (in the background)
# Seconds of a quality stage spent outside training (start, loading 87 800x800 views,
# evaluating 11 of them, a 4-frame turntable): a guess until a GPU run measures it.
QUALITY_OVERHEAD = {"quality_nerf": 60, "quality_splat": 40}
ORDER = [
    "env",
    "wheels",
    "peers",
    "build",
    "doctor",
    "pytest",
    "bench_skinning",
    "bench_hash_encoding",
    "bench_volume_rendering",
    "bench_gaussians",
    "quality_nerf",
    "quality_splat",
]
PEERS = {"gsplat": "gsplat.cuda._backend", "nerfacc": "nerfacc.cuda._backend"}
DEPS = ["trimesh", "plyfile"]  # mp3d's runtime needs missing from the GPU image
LOG_CHARS = 2_000_000  # of each stage's output kept in gpu_logs.txt (its end)


@dataclass
class Result:
    """One stage's outcome, as the summary shows it."""

    name: str
    status: str  # "ok", "FAILED (exit N)", "TIMEOUT (limit N s)", "SKIPPED: why"
    seconds: float = 0.0
    limit: float = 0.0
    command: str = ""
    tail: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# Lines left out of the summary's stage tails (they stay in gpu_logs.txt): the CPU
# profiler's chatter from bench/_measure.py's peak-memory probe, and pip's root warning.
NOISE = re.compile(r"^(USDT:|\[W\d{4} .*(CPUAllocator|profiler)|WARNING: Running pip as)")


def clean_lines(text: str) -> list[str]:
    """Log text as lines, keeping only the last state of progress bars rewritten with \\r."""
    lines = []
    for line in text.splitlines():
        line = line.rstrip().rsplit("\r", 1)[-1].rstrip()
        if line:
            lines.append(line)
    return lines


def tail(lines: list[str], n: int) -> list[str]:
    """The last n lines that are not NOISE."""
    return [line for line in lines if not NOISE.match(line)][-n:]


def kill_group(proc: subprocess.Popen) -> None:
    """Ends a stage's whole process group (ninja and nvcc children too): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Check:
    """Runs the stages, keeps the clock and writes the summary after each stage."""

    def __init__(self, args: argparse.Namespace, dry: bool, why_dry: str):
        self.args, self.dry, self.why_dry = args, dry, why_dry
        self.start = time.monotonic()
        self.deadline = self.start + args.total
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.summary_path = Path(args.summary) if args.summary else self.out / "gpu_summary.md"
        self.log_path = self.out / "gpu_logs.txt"
        self.log_path.write_text("")
        self.work = Path(args.work)
        self.logs = self.work / "logs"
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.site = self.work / "site"
        self.results: list[Result] = []
        self.unrunnable: set[str] = set()  # stages that will be skipped whatever the time
        self.machine: dict = {}
        self.peers_ready: dict[str, Path] = {}
        self.peer_procs: dict[str, tuple[subprocess.Popen, float, Path, str]] = {}
        jobs = str(args.jobs or os.cpu_count() or 4)
        self.base_env = dict(os.environ)
        self.base_env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(
                    [str(REPO), str(self.site)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
                ),
                "MP3D_NO_JIT": "1",  # a failed build must not turn into a JIT build in each stage
                "MAX_JOBS": jobs,
                "TORCH_CUDA_ARCH_LIST": args.arch,
                "TORCH_EXTENSIONS_DIR": str(self.work / "torch_extensions"),
                "TQDM_MININTERVAL": "20",
            }
        )

    # -- clock ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def reserve_after(self, name: str) -> float:
        """Seconds kept back for the selected stages after `name` (their minimums)."""
        later = ORDER[ORDER.index(name) + 1 :]
        return sum(
            CAPS[s][1] for s in later if s in CAPS and self.selected(s) and s not in self.unrunnable
        )

    def selected(self, name: str) -> bool:
        """Whether --only/--skip (names or prefixes) keep stage `name`: env always runs,
        wheels unless --skip names it, the peers' compile whenever a benchmark that uses a
        peer runs."""
        only = [t for t in self.args.only.split(",") if t]
        skip = [t for t in self.args.skip.split(",") if t]
        if name == "env":
            return True
        if any(name.startswith(t) for t in skip):
            return False
        if name == "wheels":
            return True
        if name == "peers" and only and not any(name.startswith(t) for t in only):
            return self.selected("bench_volume_rendering") or self.selected("bench_gaussians")
        return not only or any(name.startswith(t) for t in only)

    # -- stages --------------------------------------------------------------------------
    def skip(self, name: str, why: str) -> Result:
        result = Result(name, f"SKIPPED: {why}")
        self.record(result)
        return result

    def limit_for(self, name: str) -> float | None:
        """The time limit `name` runs under, or None when too little is left (recorded)."""
        cap, minimum = CAPS[name]
        limit = min(cap, self.left() - self.reserve_after(name))
        if limit < minimum:
            self.skip(
                name,
                f"only {max(self.left(), 0):.0f} s of the {self.args.total} s "
                f"total left (needs {minimum} s plus {self.reserve_after(name):.0f} s "
                "kept for later stages)",
            )
            return None
        return limit

    def run(
        self,
        name: str,
        command: str,
        limit: float,
        env: dict | None = None,
        tail_ok: int = 25,
        tail_fail: int = 40,
    ) -> Result:
        """Runs `command` (bash) in the repository under `limit` seconds, logging its output."""
        print(f"[{self.elapsed():5.0f} s] {name}: start (limit {limit:.0f} s)", flush=True)
        log = self.logs / f"{name}.log"
        started = time.monotonic()
        with open(log, "wb") as handle:
            proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=REPO,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env or self.base_env,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=limit)
                status = "ok" if rc == 0 else f"FAILED (exit {rc})"
            except subprocess.TimeoutExpired:
                kill_group(proc)
                status = f"TIMEOUT (limit {limit:.0f} s)"
        seconds = time.monotonic() - started
        lines = clean_lines(log.read_text(errors="replace"))
        result = Result(
            name,
            status,
            seconds,
            limit,
            command,
            tail(lines, tail_ok if status == "ok" else tail_fail),
        )
        self.append_log(name, status, command, lines)
        print(f"[{self.elapsed():5.0f} s] {name}: {status} in {seconds:.0f} s", flush=True)
        self.record(result)
        return result

    def append_log(self, name: str, status: str, command: str, lines: list[str]) -> None:
        with open(self.log_path, "a") as handle:
            handle.write(f"\n===== {name}: {status}\n$ {command}\n")
            text = "\n".join(lines)
            if len(text) > LOG_CHARS:
                text = f"[... {len(text) - LOG_CHARS} characters cut ...]\n" + text[-LOG_CHARS:]
            handle.write(text + "\n")

    def record(self, result: Result) -> None:
        if not any(r is result for r in self.results):
            self.results.append(result)
        self.write_summary()

    # -- peers (background) --------------------------------------------------------------
    def start_peers(self) -> None:
        for peer, module in PEERS.items():
            target = self.work / f"peer_{peer}"
            if not (target / peer).is_dir():
                self.skip(f"peer_{peer}", f"{peer} wheel not installed (see the wheels stage)")
                continue
            env = dict(self.base_env)
            env["PYTHONPATH"] = os.pathsep.join([str(target), env["PYTHONPATH"]])
            env["MAX_JOBS"] = str(max(1, int(self.base_env["MAX_JOBS"]) // 2))
            code = (
                f"import time; t = time.time(); from {module} import _C; "
                f"assert _C is not None, '{peer}: its CUDA extension did not load'; "
                f"print('{peer}: CUDA extension ready in %.0f s' % (time.time() - t))"
            )
            command = f"nice -n 10 {shlex.quote(sys.executable)} -c {shlex.quote(code)}"
            log = self.logs / f"peer_{peer}.log"
            handle = open(log, "wb")  # noqa: SIM115 (closed with the process in finish_peers)
            proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=REPO,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            handle.close()
            self.peer_procs[peer] = (proc, time.monotonic(), target, command)
            print(
                f"[{self.elapsed():5.0f} s] peer_{peer}: compiling in the background "
                f"(budget {PEER_BUDGET} s)",
                flush=True,
            )

    def finish_peers(self, keep: float) -> None:
        """Waits for the peers' compiles, each until its budget ends or only `keep` s of the
        total are left, and records which peers the benchmarks may use."""
        for peer, (proc, started, target, command) in self.peer_procs.items():
            until = min(started + PEER_BUDGET, self.deadline - keep)
            try:
                rc = proc.wait(timeout=max(0.0, until - time.monotonic()))
                status = "ok" if rc == 0 else f"FAILED (exit {rc})"
            except subprocess.TimeoutExpired:
                kill_group(proc)
                status = f"TIMEOUT (compile not done after {time.monotonic() - started:.0f} s)"
            seconds = time.monotonic() - started
            log = self.logs / f"peer_{peer}.log"
            lines = clean_lines(log.read_text(errors="replace"))
            result = Result(
                f"peer_{peer}",
                status,
                seconds,
                PEER_BUDGET,
                command,
                tail(lines, 5 if status == "ok" else 30),
            )
            if status == "ok":
                self.peers_ready[peer] = target
            else:
                result.notes.append(f"{peer} is left out of the benchmarks: they run without it")
            self.append_log(f"peer_{peer}", status, command, lines)
            print(
                f"[{self.elapsed():5.0f} s] peer_{peer}: {status} after {seconds:.0f} s", flush=True
            )
            self.record(result)
        self.peer_procs.clear()

    def peer_env(self, peer: str) -> dict:
        env = dict(self.base_env)
        if peer in self.peers_ready:
            env["PYTHONPATH"] = os.pathsep.join([str(self.peers_ready[peer]), env["PYTHONPATH"]])
        return env

    # -- summary -------------------------------------------------------------------------
    def write_summary(self) -> None:
        """Rewrites the summary file (atomically): header, table, then each stage's tail."""
        text = self.summary(table_last=False)
        tmp = self.summary_path.with_name(self.summary_path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(self.summary_path)

    def summary(self, table_last: bool) -> str:
        """The summary as Markdown; table_last puts the table after the stage tails (for
        stdout, whose end is what the device tool's reply keeps)."""
        m = self.machine
        mode = (
            f"DRY RUN ({self.why_dry}): CUDA stages skipped, the rest at tiny CPU sizes"
            if self.dry
            else "GPU run"
        )
        lines = [
            f"# mp3d GPU check: {mode}",
            "",
            f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"- commit: {git_commit()}",
            f"- machine: {m.get('gpu', 'no CUDA device')}; driver {m.get('driver', '?')}; "
            f"torch {m.get('torch', '?')} (CUDA {m.get('torch_cuda', 'none')}); "
            f"nvcc {m.get('nvcc', 'none')}; python {m.get('python', '?')}; "
            f"{os.cpu_count()} CPU cores",
            f"- time: {self.elapsed():.0f} s of the {self.args.total} s budget; caps (s): "
            + ", ".join(f"{k} {v[0]}" for k, v in CAPS.items())
            + f", peers {PEER_BUDGET}",
        ]
        table = ["", "| stage | result | time (s) | limit (s) |", "| --- | --- | ---: | ---: |"]
        for r in self.results:
            status = r.status.replace("|", "/")
            table.append(f"| {r.name} | {status} | {r.seconds:.0f} | {r.limit:.0f} |")
        if not table_last:
            lines += table
        for r in self.results:
            if not r.tail and not r.notes:
                continue
            lines += ["", f"## {r.name}: {r.status}", ""]
            lines += [f"{note}" for note in r.notes]
            if r.tail:
                lines += ["```", *r.tail, "```"]
        if table_last:
            lines += table
        lines += ["", f"Full logs: {self.log_path} (this summary: {self.summary_path})."]
        return "\n".join(lines) + "\n"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %<(60,trunc)%s"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown (no git history in this copy of the tree)"


PROBE = r"""
import json, platform, torch
info = {"python": platform.python_version(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda or "none", "cuda": torch.cuda.is_available()}
if info["cuda"]:
    p = torch.cuda.get_device_properties(0)
    info["gpu"] = (f"{p.name}, compute capability {p.major}.{p.minor}, "
                   f"{p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
print("PROBE " + json.dumps(info))
"""


def probe(python: str) -> dict:
    """Versions and the CUDA device as torch sees them (a subprocess: no CUDA context here)."""
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120)
        for line in out.stdout.splitlines():
            if line.startswith("PROBE "):
                return json.loads(line[6:])
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:]}
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return {"error": str(error)}


def find_lego(given: str | None) -> Path | None:
    candidates = (
        [Path(given)]
        if given
        else [
            REPO / ".gpu_carry" / "lego",
            REPO / "shared" / "data" / "lego",
            REPO.parent / "shared" / "data" / "lego",
        ]
    )
    for path in candidates:
        if (path / "transforms_train.json").is_file():
            return path
    return None


def copy_view(out_dir: Path, dest: Path) -> str | None:
    """Copies the first held-out RGB image of a quality run to `dest` (comes back in $OUT)."""
    images = sorted(p for p in (out_dir / "test").glob("*.png") if "depth" not in p.name)
    if not images:
        return None
    shutil.copyfile(images[0], dest)
    return f"first held-out view ({images[0].name}) copied to {dest.name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="skip the CUDA parts and run the rest at tiny CPU sizes (automatic without CUDA)",
    )
    parser.add_argument(
        "--out",
        default=os.environ.get("OUT") or "/tmp/mp3d_gpu_check/out",
        help="folder for gpu_summary.md and gpu_logs.txt (default: $OUT)",
    )
    parser.add_argument(
        "--summary", default=None, help="summary file (default: OUT/gpu_summary.md)"
    )
    parser.add_argument(
        "--work",
        default="/tmp/mp3d_gpu_check",
        help="scratch folder: installed wheels, peers' builds, logs",
    )
    parser.add_argument(
        "--carry",
        default=str(REPO / ".gpu_carry"),
        help="folder made by scripts/fetch_gpu_wheels.sh (wheels/, lego/)",
    )
    parser.add_argument(
        "--data", default=None, help="lego scene (default: CARRY/lego, then ../shared/data/lego)"
    )
    parser.add_argument(
        "--total",
        type=int,
        default=TOTAL_BUDGET,
        help="seconds for the whole check (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated stage names or prefixes "
        "to run (e.g. build,doctor,quality); env and wheels always run",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated stage names or prefixes to leave out (e.g. peers,pytest)",
    )
    parser.add_argument(
        "--quality-minutes",
        type=float,
        default=None,
        help="upper bound on each quality run's training minutes "
        "(default: whatever its time limit leaves)",
    )
    parser.add_argument("--arch", default="9.0", help="TORCH_CUDA_ARCH_LIST (default: 9.0)")
    parser.add_argument("--jobs", type=int, default=None, help="MAX_JOBS (default: all cores)")
    args = parser.parse_args()

    python = sys.executable
    info = probe(python)
    has_cuda = bool(info.get("cuda"))
    dry = args.dry_run or not has_cuda
    why_dry = "--dry-run" if args.dry_run else "torch sees no CUDA device"
    check = Check(args, dry, why_dry)
    check.machine.update({k: v for k, v in info.items() if isinstance(v, str)})
    py = shlex.quote(python)
    wheels = Path(args.carry) / "wheels"
    lego = find_lego(args.data)
    if lego is None:
        check.unrunnable |= {"quality_nerf", "quality_splat"}

    # env ---------------------------------------------------------------------------------
    env_cmd = (
        f"{py} -c {shlex.quote(PROBE)}; "
        "if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,"
        "memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu "
        "--format=csv; else echo 'nvidia-smi: not found'; fi; "
        "if command -v nvcc >/dev/null; then nvcc --version | tail -n 2; "
        "else echo 'nvcc: not found'; fi; "
        'command -v ninja >/dev/null && echo "ninja $(ninja --version)" '
        "|| echo 'ninja: not found'; "
        'echo "cores: $(nproc)"; free -g | head -n 2; df -h /tmp | tail -n 1'
    )
    res = check.run("env", env_cmd, CAPS["env"][0], tail_ok=20)
    for line in res.tail:
        if "driver_version" in line or not line or line.startswith("PROBE"):
            continue
        if has_cuda and "," in line and "MiB" in line:
            check.machine["driver"] = line.split(",")[1].strip()
        if line.startswith("Cuda compilation tools") and "release" in line:
            check.machine["nvcc"] = line.split("release", 1)[1].strip(" ,")
    check.write_summary()

    # wheels ------------------------------------------------------------------------------
    if check.selected("wheels"):
        if not wheels.is_dir() or not any(wheels.glob("*.whl")):
            check.skip(
                "wheels",
                f"no wheels in {wheels}: run scripts/fetch_gpu_wheels.sh on a "
                "machine with a registry and carry .gpu_carry",
            )
        else:
            groups = [(check.site, [d for d in DEPS if any(wheels.glob(f"{d}-*.whl"))])]
            groups += [
                (check.work / f"peer_{p}", [p]) for p in PEERS if any(wheels.glob(f"{p}-*.whl"))
            ]
            parts = []
            for target, names in groups:
                if names:
                    parts.append(
                        f"rm -rf {shlex.quote(str(target))}; {py} -m pip install -q --no-index "
                        f"--no-deps --no-compile --no-cache-dir --find-links "
                        f"{shlex.quote(str(wheels))} --target {shlex.quote(str(target))} "
                        f"{' '.join(names)} && echo 'installed {' '.join(names)} in {target}' "
                        "|| rc=1"
                    )
            check_imports = (
                "import importlib, importlib.metadata as m; "
                "[print(n, m.version(n), importlib.import_module(n).__file__) "
                "for n in " + repr(DEPS) + "]"
            )
            parts.append(f"{py} -c {shlex.quote(check_imports)} || rc=1")
            check.run("wheels", "rc=0; " + "; ".join(parts) + "; exit $rc", CAPS["wheels"][0])
    # peers, in the background while mp3d builds ------------------------------------------
    if check.selected("peers"):
        if dry:
            check.skip(
                "peers",
                "dry run, no CUDA: gsplat and nerfacc compile their CUDA code "
                "on first use, on the GPU machine only",
            )
        else:
            check.start_peers()

    # build -------------------------------------------------------------------------------
    if check.selected("build"):
        if dry:
            check.skip(
                "build",
                "dry run, no CUDA: the CUDA build of mp3d._C is skipped; the "
                "stages below use the extension already built here",
            )
        elif (limit := check.limit_for("build")) is not None:
            build_cmd = (
                f"export TORCH_CUDA_ARCH_LIST={shlex.quote(args.arch)}; "
                f"{py} -m pip install --no-build-isolation --no-index --no-deps -v -e ."
            )
            check.run("build", build_cmd, limit, tail_ok=5, tail_fail=60)

    # doctor ------------------------------------------------------------------------------
    if check.selected("doctor") and (limit := check.limit_for("doctor")) is not None:
        assert_cuda = (
            "import torch; from mp3d._backend import backend; b = backend(); print(b); "
            "assert not torch.cuda.is_available() or (b.built_with_cuda and b.has_cuda), "
            "'CUDA device present but mp3d._C has no CUDA kernels'"
        )
        doctor_cmd = f"{py} -m mp3d doctor; {py} -c {shlex.quote(assert_cuda)}"
        if not dry:
            where = "import torch, mp3d._C as c; print(c.__file__)"
            doctor_cmd += (
                f"; rc=$?; so=$({py} -c {shlex.quote(where)} 2>/dev/null); "
                'if [ -n "$so" ] && command -v cuobjdump >/dev/null; then '
                'echo "cubins in $so:"; cuobjdump --list-elf "$so" | '
                "sed 's/.*\\.\\(sm_[0-9a-z]*\\)\\..*/\\1/' | sort | uniq -c; fi; "
                "exit $rc"
            )
        check.run("doctor", doctor_cmd, limit, tail_ok=30)

    # pytest -m gpu -----------------------------------------------------------------------
    if check.selected("pytest") and (limit := check.limit_for("pytest")) is not None:
        flags = "-q -rfEs" if dry else "-q -rfE"
        if importlib.util.find_spec("pytest_timeout") is not None:
            flags += " --timeout=120"
        check.run(
            "pytest",
            f"{py} -m pytest -m gpu {flags} --continue-on-collection-errors -p no:cacheprovider",
            limit,
            tail_ok=25,
            tail_fail=45,
        )

    # benchmarks --------------------------------------------------------------------------
    dev = "cpu" if dry else "cuda"
    benches = {
        "bench_skinning": (
            "bench/bench_skinning.py --device cuda --batch 1024",
            "bench/bench_skinning.py --device cpu --batch 2 --vertices 1000 --repeats 1",
            None,
        ),
        "bench_hash_encoding": (
            "bench/bench_hash_encoding.py --device cuda --points 262144,1048576,4194304",
            "bench/bench_hash_encoding.py --device cpu --points 4096 --repeats 1",
            None,
        ),
        "bench_volume_rendering": (
            "bench/bench_volume_rendering.py --device cuda --shapes 4096x192,65536x64,1048576x64",
            "bench/bench_volume_rendering.py --device cpu --shapes 512x32 --repeats 1",
            "nerfacc",
        ),
        "bench_gaussians": (
            "bench/bench_gaussians.py --device cuda --gaussians 1000000 --width 1920 "
            "--height 1080 --no-reference",
            "bench/bench_gaussians.py --device cpu --gaussians 1000 --width 48 --height 48 "
            "--repeats 1",
            "gsplat",
        ),
    }
    for name, (gpu_cmd, dry_cmd, peer) in benches.items():
        if peer is not None and check.peer_procs:
            # Benchmarks with peers wait for the peers' compile (no compile beside timings).
            keep = sum(
                CAPS[s][1] for s in ORDER[ORDER.index(name) :] if s in CAPS and check.selected(s)
            )
            check.finish_peers(keep)
        if not check.selected(name) or (limit := check.limit_for(name)) is None:
            continue
        env = check.peer_env(peer) if peer else check.base_env
        compiling = [p for p, (proc, *_) in check.peer_procs.items() if proc.poll() is None]
        res = check.run(name, f"{py} {dry_cmd if dry else gpu_cmd}", limit, env=env, tail_ok=30)
        if compiling:
            res.notes.append(
                f"ran while {' and '.join(compiling)} still compiled in the "
                "background (niced): CPU-side launch overhead may be inflated"
            )
        if peer and not dry and peer not in check.peers_ready:
            res.notes.append(
                f"{peer}: not compiled in time or failed (see peer_{peer}); the "
                "benchmark ran without it"
            )
            check.write_summary()
    if check.peer_procs:  # benchmarks left out: still end the peers' compiles cleanly
        check.finish_peers(0)

    # quality runs ------------------------------------------------------------------------
    quality = {
        "quality_nerf": ("bench/quality_nerf_lego.py", "", "--steps 10"),
        "quality_splat": ("bench/quality_splat_lego.py", "", "--steps 10 --init-points 2000"),
    }
    for name, (script, gpu_extra, dry_extra) in quality.items():
        if not check.selected(name):
            continue
        if lego is None:
            check.skip(
                name,
                "lego scene not found: run scripts/fetch_gpu_wheels.sh here (it "
                "copies ../shared/data/lego into .gpu_carry/lego) and carry "
                ".gpu_carry, or pass --data",
            )
            continue
        if (limit := check.limit_for(name)) is None:
            continue
        run_dir = check.work / name
        shutil.rmtree(run_dir, ignore_errors=True)
        if dry:
            minutes, size = 0.05, f"--downscale 16 {dry_extra} --turntable-frames 1"
        else:
            minutes = max(0.25, (limit - QUALITY_OVERHEAD[name]) / 60)
            if args.quality_minutes is not None:
                minutes = min(minutes, args.quality_minutes)
            size = f"--downscale 1 {gpu_extra} --turntable-frames 4"
        cmd = (
            f"{py} {script} --device {dev} --minutes {minutes:.2f} {size} "
            f"--data {shlex.quote(str(lego))} --out {shlex.quote(str(run_dir))}"
        )
        res = check.run(name, cmd, limit, tail_ok=8)
        res.notes.append(f"training budget {minutes:.2f} min inside a {limit:.0f} s limit")
        copied = copy_view(run_dir, check.out / f"{name}_view.png")
        if copied:
            res.notes.append(copied)
        check.write_summary()

    check.write_summary()
    print()
    print(check.summary(table_last=True))
    failed = [r.name for r in check.results if not r.ok and not r.status.startswith("SKIPPED")]
    if failed:
        print(f"stages failed or timed out: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
