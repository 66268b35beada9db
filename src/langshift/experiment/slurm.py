"""The `slurm` executor: each stage one submitit job on a SLURM cluster, the parent only watches.

A stage is submitted as soon as the stages it reads are done; the stages that become ready together
and ask for the same resources go out as one job array (`array_parallelism` of them at once). The job
function is `StageJob`: plain data (the stage's directory and its log folder), so what is pickled for
the cluster is two paths, and the job runs `plan.run_stage_dir` from the directory alone.

Each stage has its own log folder, `runs/<name>/logs/<kind>-<stage dir>/`, on the shared filesystem:

    stage.log      the stage's output (and its traceback when it fails)
    progress.json  its item progress (langshift.progress, the channel the local executor reads too)
    running.json   written when the job starts: job id, host, pid
    jobs.jsonl     one line per submission: job id, cluster, submitit folder

submitit's own files (sbatch scripts, pickles, srun output; one array shares one script) are in
`runs/<name>/logs/submitit/`.

Resume: a rerun reads each unfinished stage's last `jobs.jsonl` line and, if that job is still queued
or running, re-attaches to it (submitit reloads a job from its folder and id) instead of submitting
the stage again; a stage whose `stage.json` exists is skipped, as on a laptop.

Preemption and time limits: `StageJob` is `submitit.helpers.Checkpointable`. On SLURM's warning signal
submitit requeues the same call; the stage runs again from its directory and a training stage resumes
from its newest complete checkpoint (`checkpoints/`, see train/checkpoints.py).

Test hook: `LANGSHIFT_SUBMITIT_CLUSTER=local` (or `debug`) sends the same submissions to submitit's
LocalExecutor (a process per job on this machine, pickled call and result as on a cluster) or
DebugExecutor (in this process); the default is `slurm`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import submitit
from tqdm.auto import tqdm

from langshift.experiment.config import ExecutorOptions, Experiment
from langshift.experiment.executors import StageFailed, log_tail
from langshift.experiment.plan import RUNNERS, SPEC, Stage, is_done, run_stage_dir, write_spec
from langshift.files import append_jsonl, read_jsonl, write_json
from langshift.progress import ENV as PROGRESS_ENV
from langshift.progress import read_progress

CLUSTER_ENV = "LANGSHIFT_SUBMITIT_CLUSTER"
CLUSTERS = ("slurm", "local", "debug")  # submitit's names
STAGE_LOG, CHANNEL, RUNNING, JOBS = "stage.log", "progress.json", "running.json", "jobs.jsonl"
ONE_DEVICE = {"data", "eval"}  # stages that use one device: one node and at most one GPU
POLL_S = 1.0
FINISH_GRACE_S = 30.0  # a job that ended well but whose stage.json the shared filesystem does not show yet


class NoScheduler(RuntimeError):
    exit_code = 2


# ------------------------------------------------------------------------------------ in the job


@dataclass
class StageJob(submitit.helpers.Checkpointable):
    """The submitit job function: run the stage in `stage_dir` (its spec is there), output to `log_dir`.

    `checkpoint` (inherited) requeues this same call on preemption or timeout; the stage resumes from
    its directory. On a multi-node stage every node runs it: node 0 runs the stage and marks it done,
    the others run only its runner (each `accelerate launch` then joins with its own rank)."""

    stage_dir: str
    log_dir: str

    def __call__(self) -> str:
        out, logs = Path(self.stage_dir), Path(self.log_dir)
        if is_done(out):
            return str(out)  # a requeued or repeated job of a stage that has finished
        env = submitit.JobEnvironment()
        main = env.global_rank == 0
        if main:
            os.environ[PROGRESS_ENV] = str(logs / CHANNEL)
            write_json(logs / RUNNING, {"job_id": env.job_id, "host": env.hostname, "pid": os.getpid(),
                                        "nodes": env.num_nodes, "started": time.time()})
        with _output_to(logs / (STAGE_LOG if main else f"stage.node{env.node}.log")):
            print(f"[langshift] {env}: {out}", flush=True)
            try:
                if main:
                    run_stage_dir(out)
                else:
                    stage = json.loads((out / SPEC).read_text(encoding="utf-8"))
                    RUNNERS[stage["kind"]](stage["spec"], out)
            except Exception:
                traceback.print_exc()  # into the stage's log, whose tail the parent shows
                raise
        return str(out)


@contextlib.contextmanager
def _output_to(log: Path):
    """Send this process's stdout and stderr (file descriptors too, for child processes) to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "a", buffering=1, encoding="utf-8") as sink:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
        finally:
            sink.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


# ------------------------------------------------------------------------------------ re-attaching


def _alive(pid: int) -> bool:
    """Process `pid` exists and is not a zombie (an orphan's parent may not reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class _AdoptedLocalJob(submitit.LocalJob):
    """A job of submitit's local cluster that an earlier parent started: its controller, whose pid
    is the job id, runs on as an orphan; it is finished when it has gone."""

    def get_info(self, mode: str = "force") -> dict[str, str]:
        if self.paths.result_pickle.exists():
            return {"jobState": "FINISHED"}
        return {"jobState": "RUNNING" if _alive(int(self.job_id)) else "INTERRUPTED"}

    def cancel(self, check: bool = True) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(self.job_id), signal.SIGINT)


ADOPT = {  # cluster -> a job of an earlier parent, from its folder and id (debug jobs die with their parent)
    "slurm": lambda folder, job_id, tasks: submitit.SlurmJob(folder=folder, job_id=job_id, tasks=tuple(range(tasks))),
    "local": lambda folder, job_id, tasks: _AdoptedLocalJob(folder=folder, job_id=job_id),
}


# ------------------------------------------------------------------------------------ the parent


@dataclass
class Tracked:
    stage: Stage
    out: Path
    logs: Path
    job: submitit.Job
    state: str = "queued"  # queued | running | done | failed
    host: str = ""
    ended_well: float | None = None  # when the job was seen finished without error, but no stage.json yet


def resources(opts: ExecutorOptions, stage: Stage, name: str) -> dict:
    """The submitit parameters of one stage (AutoExecutor names; `slurm_*` only matter on SLURM)."""
    whole = stage.kind not in ONE_DEVICE
    params = {"name": f"langshift-{name}", "timeout_min": opts.timeout_min, "mem_gb": opts.mem_gb,
              "cpus_per_task": opts.cpus_per_task, "tasks_per_node": 1,
              "nodes": opts.nodes if whole else 1,
              "gpus_per_node": opts.gpus_per_node if whole else min(opts.gpus_per_node, 1),
              "slurm_partition": opts.partition, "slurm_account": opts.account, "slurm_qos": opts.qos,
              "slurm_array_parallelism": opts.array_parallelism, "slurm_setup": opts.setup or None,
              "slurm_additional_parameters": dict(opts.slurm_additional_parameters) or None}
    return {k: v for k, v in params.items() if v is not None}


class SlurmExecutor:
    def __init__(self, exp: Experiment):
        self.options, self.name = exp.executor, exp.name
        self.cluster = os.environ.get(CLUSTER_ENV) or "slurm"
        if self.cluster not in CLUSTERS:
            raise NoScheduler(f"{CLUSTER_ENV}={self.cluster!r}: expected one of {', '.join(CLUSTERS)}")
        if self.cluster == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
            raise NoScheduler("executor 'slurm': no SLURM here (sbatch/srun not found); run `langshift run` on a "
                              "node that can submit jobs, or use --executor local")

    def run(self, todo: list[Stage], root: Path, bar: tqdm) -> None:
        self.start(root, bar)
        tracked = self._adopt(todo)
        waiting = [s for s in todo if s.directory(root) not in tracked]
        shown = ""
        while True:
            ready = [s for s in waiting if all(is_done(n.directory(root)) for n in s.needs)]
            if ready:
                waiting = [s for s in waiting if all(s is not r for r in ready)]
                tracked.update(self._submit(ready))
            active = [t for t in tracked.values() if t.state in ("queued", "running")]
            if not active:
                if waiting:  # cannot happen with a plan's stages: each one's inputs come before it
                    raise StageFailed("stages wait for inputs that are neither done nor running: "
                                      + ", ".join(s.label for s in waiting))
                return
            for t in active:
                self._poll(t)
            now = self._summary(tracked.values(), len(waiting))
            if now != shown:
                bar.set_postfix_str(shown := now)
            time.sleep(POLL_S)

    def start(self, root: Path, bar: tqdm) -> None:
        self.root, self.bar = root, bar
        self.folder = (root / "logs" / "submitit").resolve()

    # -- submitting

    def _log_dir(self, stage: Stage) -> Path:
        return (self.root / "logs" / f"{stage.kind}-{stage.directory(self.root).name}").resolve()

    def _submit(self, ready: list[Stage]) -> dict[Path, Tracked]:
        """Submit `ready`, one job array per set of stages that ask for the same resources."""
        groups: dict[str, list[Stage]] = {}
        for stage in sorted(ready, key=lambda s: -s.cost):
            groups.setdefault(json.dumps(resources(self.options, stage, self.name), sort_keys=True), []).append(stage)
        tracked = {}
        for params, stages in groups.items():
            executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
            executor.update_parameters(**json.loads(params))
            calls = [StageJob(str(write_spec(s, self.root).resolve()), str(self._log_dir(s))) for s in stages]
            if len(calls) > 1:
                with executor.batch():
                    jobs = [executor.submit(call) for call in calls]
            else:
                jobs = [executor.submit(calls[0])]
            for stage, call, job in zip(stages, calls, jobs, strict=True):
                logs = Path(call.log_dir)
                append_jsonl(logs / JOBS, {"job_id": job.job_id, "cluster": self.cluster, "folder": str(self.folder),
                                           "tasks": job.num_tasks, "submitted": time.time()})
                tqdm.write(f"[langshift run] {stage.kind}: {stage.label}: queued as job {job.job_id} "
                           f"(log: {logs / STAGE_LOG})")
                tracked[stage.directory(self.root)] = Tracked(stage, Path(call.stage_dir), logs, job)
        return tracked

    def _adopt(self, todo: list[Stage]) -> dict[Path, Tracked]:
        """Jobs that an earlier parent submitted for these stages and that are still queued or running."""
        if self.cluster not in ADOPT:
            return {}
        candidates = []
        for stage in todo:
            logs = self._log_dir(stage)
            records = read_jsonl(logs / JOBS, skip_torn_tail=True) if (logs / JOBS).is_file() else []
            last = records[-1] if records else None
            if last and last.get("cluster") == self.cluster:
                job = ADOPT[self.cluster](Path(last["folder"]), str(last["job_id"]), int(last.get("tasks", 1)))
                candidates.append(Tracked(stage, stage.directory(self.root).resolve(), logs, job))
        adopted = {}  # all jobs registered first: SLURM's state comes from one sacct call for all of them
        for t in candidates:
            if not t.job.done():
                tqdm.write(f"[langshift run] {t.stage.kind}: {t.stage.label}: re-attached to job {t.job.job_id}")
                adopted[t.stage.directory(self.root)] = t
        return adopted

    # -- watching

    def _poll(self, t: Tracked) -> None:
        before = t.state
        if is_done(t.out):
            t.state = "done"
        elif t.job.done():
            error = t.job.exception()
            if error is not None:
                t.state = "failed"
            else:  # the job ended well: its stage.json is on its way through the shared filesystem
                t.ended_well = t.ended_well or time.time()
                if time.time() - t.ended_well > FINISH_GRACE_S:
                    t.state = "failed"
        else:
            running = _read_json(t.logs / RUNNING)
            if running.get("job_id") == t.job.job_id:
                t.state, t.host = "running", running.get("host", "?")
        if t.state == before:
            return
        stage = t.stage
        if t.state == "running":
            tqdm.write(f"[langshift run] {stage.kind}: {stage.label}: running on {t.host} (job {t.job.job_id})")
        elif t.state == "done":
            tqdm.write(f"[langshift run] {stage.kind}: {stage.label}: done")
            self.bar.update(1)
        elif t.state == "failed":
            log = t.logs / STAGE_LOG
            if not log.is_file():  # the job died before the stage started: submitit's own error stream
                log = t.job.paths.stderr
            raise StageFailed(f"stage {stage.kind} {stage.label} failed (job {t.job.job_id}); the end of {log}:\n"
                              f"{log_tail(log)}\n(jobs already queued or running go on; rerun to re-attach to them,"
                              " or cancel them)")

    def _summary(self, tracked, waiting: int) -> str:
        states = [t.state for t in tracked]
        counts = f"{waiting} waiting, {states.count('queued')} queued, {states.count('running')} running"
        running = [f"{t.stage.kind} {t.stage.label}@{t.host}: {read_progress(t.logs / CHANNEL)}".rstrip(": ")
                   for t in tracked if t.state == "running"]
        return " | ".join([counts, *running])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
