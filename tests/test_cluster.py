"""The slurm executor through submitit, without a SLURM controller.

`LANGSHIFT_SUBMITIT_CLUSTER=debug` runs the same submissions in this process (submitit's DebugExecutor),
`=local` as processes of this machine (LocalExecutor: the call and its result pickled, as on a cluster).
A real SLURM controller and several nodes cannot run here; the sbatch scripts are checked as submitit
writes them, handed to a stand-in `sbatch` that only records them.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from submitit.helpers import DelayedSubmission
from tqdm import tqdm
from typer.testing import CliRunner

from langshift.experiment import StageFailed, load_experiment, plan, run_experiment
from langshift.experiment.executors import make_executor
from langshift.experiment.plan import run_stage_dir, write_spec
from langshift.experiment.rendezvous import expand_nodelist, machine_args
from langshift.experiment.slurm import CLUSTER_ENV, JOBS, RUNNING, STAGE_LOG, SlurmExecutor
from langshift.files import InputError, read_jsonl

DEMO = Path(__file__).parents[1] / "configs" / "demo.yaml"


def _overrides(out: Path, tiny: Path, cache: Path, *more: str) -> list[str]:
    return [f"out={out}", f"models=[{{name: tiny, model: {tiny}}}]", "eval.limit=2",
            f"train.cache_dir={cache}", *more]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_llama):
    """The --quick demo run by the local executor, in this process: the report the others must match."""
    base = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANGSHIFT_CACHE", str(base / "cache"))
        exp = load_experiment(DEMO, quick=True, overrides=_overrides(base / "run", tiny_llama, base / "cache",
                                                                     "jobs=1"))
        root = run_experiment(exp, progress=False)
    return {"root": root, "cache": base / "cache", "rows": json.loads((root / "results.json").read_text())["rows"],
            "report": (root / "report.md").read_text(), "dirs": {s.directory(root).relative_to(root) for s in
                                                                 plan(exp, root)}}


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    def use(name: str):
        monkeypatch.setenv(CLUSTER_ENV, name)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # job processes: as this one (tests/conftest.py)
        monkeypatch.setenv("LANGSHIFT_CACHE", str(tmp_path / "cache"))
    return use


def _submissions(root: Path) -> Counter:
    """How often each stage directory was submitted, from submitit's own pickles of the job calls."""
    pickles = (root / "logs" / "submitit").glob("*_submitted.pkl")
    return Counter(DelayedSubmission.load(p).function.stage_dir for p in pickles)


@pytest.mark.slow
def test_quick_demo_through_slurm_gives_the_local_report(tmp_path, tiny_llama, reference, cluster):
    cluster("debug")
    exp = load_experiment(DEMO, quick=True, overrides=_overrides(tmp_path / "run", tiny_llama, reference["cache"],
                                                                 "executor=slurm"))
    root = run_experiment(exp, progress=False)
    assert {s.directory(root).relative_to(root) for s in plan(exp, root)} == reference["dirs"]  # same cache keys
    assert json.loads((root / "results.json").read_text())["rows"] == reference["rows"]
    assert (root / "report.md").read_text() == reference["report"]
    for stage in plan(exp, root):  # each stage one job, with its own log folder
        logs = root / "logs" / f"{stage.kind}-{stage.directory(root).name}"
        assert len(read_jsonl(logs / JOBS)) == 1 and (logs / STAGE_LOG).is_file()
        assert json.loads((logs / RUNNING).read_text())["job_id"] == read_jsonl(logs / JOBS)[0]["job_id"]


@pytest.mark.slow
def test_killed_parent_rerun_reattaches_no_stage_twice_none_lost(tmp_path, tiny_llama, reference, cluster):
    """submitit's local cluster: the jobs outlive their parent, as SLURM jobs do."""
    cluster("local")
    root = tmp_path / "run"
    overrides = _overrides(root, tiny_llama, reference["cache"], "methods=[clo]")
    exp = load_experiment(DEMO, quick=True, overrides=[*overrides, "executor=slurm"])
    data = next(s for s in plan(exp, root) if s.kind == "data")
    run_stage_dir(write_spec(data, root))  # built here, so that the parent starts with two jobs at once
    cmd = [sys.executable, "-m", "langshift.cli", "run", str(DEMO), "--quick", "--executor", "slurm",
           *[x for o in overrides for x in ("--set", o)]]
    with open(tmp_path / "parent.log", "wb") as log:
        parent = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    deadline = time.time() + 240
    while not list(root.glob("logs/train-*/" + JOBS)):  # the training stage (and the base eval) submitted
        assert parent.poll() is None and time.time() < deadline, (tmp_path / "parent.log").read_text()[-3000:]
        time.sleep(0.2)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    train = next(root.glob("train/*"))
    assert not (train / "stage.json").exists()  # its job is still queued or running

    run_experiment(exp, progress=False)
    stages = [s.directory(root).resolve() for s in plan(exp, root)]
    assert all((d / "stage.json").is_file() for d in stages)  # none lost
    jobs = Counter({str(d): 1 for d in stages if d != data.directory(root).resolve()})
    assert _submissions(root) == jobs  # none submitted twice
    logs = next(root.glob("logs/train-*"))
    assert json.loads((logs / RUNNING).read_text())["job_id"] == read_jsonl(logs / JOBS)[0]["job_id"]
    rows = json.loads((root / "results.json").read_text())["rows"]
    assert rows == [r for r in reference["rows"] if r["method"] in ("base", "clo")]


@pytest.mark.slow
def test_a_failed_job_stops_the_run_naming_the_stage_with_its_log(tmp_path, cluster):
    cluster("local")
    empty = tmp_path / "empty-model"  # exists (so the config check passes) but holds no model: the job fails
    empty.mkdir()
    exp = load_experiment(DEMO, quick=True, overrides=[f"out={tmp_path}", "executor=slurm", "methods=[clo]",
                                                       f"models=[{{name: missing, model: {empty}}}]"])
    with pytest.raises(StageFailed, match=r"stage (eval|train) missing-sw-\S+ failed \(job \d+\); the end of "
                                          r"\S+/stage\.log:\n") as e:
        run_experiment(exp, progress=False)
    log = Path(re.search(r"the end of (\S+):\n", str(e.value)).group(1))
    assert log.parent.parent == tmp_path / "logs"
    last = log.read_text().strip().splitlines()[-1]  # the exception, written into the stage's log
    assert "empty-model" in last and last in str(e.value)
    assert not list(tmp_path.glob("eval/*/stage.json")) and not list(tmp_path.glob("train/*/stage.json"))


@pytest.mark.slow
def test_a_preempted_training_stage_resumes_from_its_last_checkpoint(tmp_path, tiny_llama, cluster):
    """SLURM's signal to a running job (USR2, as before a time limit or on preemption): submitit
    requeues the same call and training continues from its newest complete checkpoint."""
    cluster("local")
    exp = load_experiment(DEMO, quick=True, overrides=_overrides(
        tmp_path, tiny_llama, tmp_path / "cache", "executor=slurm", "methods=[sft]", "train.max_steps=16",
        "train.eval_steps=4"))
    data, train = (next(s for s in plan(exp, tmp_path) if s.kind == kind) for kind in ("data", "train"))
    run_stage_dir(write_spec(data, tmp_path))  # built here: the job to watch is the training stage

    def preempt():  # once a checkpoint is complete, signal the stage's job process as SLURM would
        deadline = time.time() + 240
        while time.time() < deadline:
            done = list(tmp_path.glob("train/*/checkpoints/checkpoint-*/trainer_state.json"))
            running = list(tmp_path.glob("logs/train-*/" + RUNNING))
            if done and running:
                os.kill(json.loads(running[0].read_text())["pid"], signal.SIGUSR2)
                return
            time.sleep(0.05)

    signaller = threading.Thread(target=preempt)
    signaller.start()
    make_executor(exp).run([train], tmp_path, tqdm(disable=True))
    signaller.join()
    log = next(tmp_path.glob("logs/train-*/" + STAGE_LOG)).read_text()
    assert "Caught signal SIGUSR2" in log and "this job is preempted" in log
    assert re.search(r"\[langshift\] resuming from \S+/checkpoint-(4|8|12)\n", log)
    assert (train.directory(tmp_path) / "stage.json").is_file()
    steps = [r["step"] for r in read_jsonl(next(tmp_path.glob("train/*/metrics.jsonl"))) if "loss" in r]
    assert steps == list(range(1, 17))  # one run, as if it had never stopped
    assert set(_submissions(tmp_path).values()) == {1}  # requeued by submitit, not submitted again


# ------------------------------------------------------------------------------------ options


def _config(tmp_path, executor, **top):
    raw = yaml.safe_load(DEMO.read_text())
    raw["executor"] = executor
    raw.update(top)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.mark.parametrize("executor,top,field,words", [
    ({"kind": "pbs"}, {}, "executor.kind", "'local' or 'slurm'"),
    ({"kind": "slurm", "partiton": "gpu"}, {}, "executor.partiton", "unknown key"),
    ({"kind": "slurm", "gpus_per_node": -1}, {}, "executor.gpus_per_node", "greater than or equal to 0"),
    ({"kind": "slurm", "timeout_min": 0}, {}, "executor.timeout_min", "greater than or equal to 1"),
    ({"kind": "slurm", "mem_gb": "lots"}, {}, "executor.mem_gb", "valid number"),
    ({"kind": "slurm", "slurm_additional_parameters": {"time": "2:00:00"}}, {},
     "executor.slurm_additional_parameters", "set by executor.timeout_min"),
    ({"kind": "slurm", "slurm_additional_parameters": {"array": "0-3"}}, {},
     "executor.slurm_additional_parameters", "set by langshift and submitit"),
    ({"kind": "slurm", "nodes": 2}, {}, "executor.nodes", "needs launcher.kind: accelerate"),
    ({"kind": "slurm", "gpus_per_node": 8}, {}, "executor.gpus_per_node", "needs launcher.kind: accelerate"),
])
def test_executor_option_errors_name_the_key(tmp_path, executor, top, field, words):
    with pytest.raises(InputError) as e:
        load_experiment(_config(tmp_path, executor, **top))
    assert e.value.field == field and words in str(e.value) and str(tmp_path / "exp.yaml") in str(e.value)


def test_executor_options_that_hold(tmp_path):
    multi = load_experiment(_config(tmp_path, {"kind": "slurm", "nodes": 2, "gpus_per_node": 8},
                                    launcher={"kind": "accelerate", "config_file": "configs/accelerate/ddp.yaml"},
                                    jobs=4))  # jobs > 1 with accelerate is a local executor's limit only
    assert multi.executor.nodes == 2 and multi.executor.kind == "slurm"
    short = load_experiment(_config(tmp_path, "slurm"), overrides=["executor.partition=gpu"])
    assert short.executor.kind == "slurm" and short.executor.partition == "gpu"
    assert load_experiment(DEMO).executor.kind == "local"


def test_executor_flag(tmp_path):
    from langshift.cli import app

    result = CliRunner().invoke(app, ["run", str(DEMO), "--executor", "pbs", "--dry-run"])
    assert result.exit_code == 2 and "executor.kind" in result.output
    result = CliRunner().invoke(app, ["run", str(DEMO), "--executor", "slurm", "--dry-run", "--set", f"out={tmp_path}"])
    assert result.exit_code == 0 and "todo  data" in result.output


def test_slurm_without_a_scheduler_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    exp = load_experiment(DEMO, overrides=[f"out={tmp_path}", "executor=slurm"])
    with pytest.raises(RuntimeError, match="no SLURM here"):
        run_experiment(exp, progress=False)


# ------------------------------------------------------------------------------------ sbatch scripts


SBATCH = """#!/bin/sh
# stand-in: keep the script, answer as sbatch does
n=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 100)
echo $((n + 1)) > "$FAKE_SLURM/next"
cp "$1" "$FAKE_SLURM/job-$n.sh"
echo "Submitted batch job $n"
"""
SACCT = """#!/bin/sh
# stand-in: the states the test wrote, for every job id asked about
echo "JobID|State|NodeList"
cat "$FAKE_SLURM"/state-* 2>/dev/null
"""


def test_sbatch_scripts_arrays_and_reattaching_to_running_jobs(tmp_path, monkeypatch):
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in {"sbatch": SBATCH, "sacct": SACCT, "srun": "#!/bin/sh\nexit 1\n"}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    root = tmp_path / "run"
    executor = {"kind": "slurm", "partition": "gpu", "account": "clo", "qos": "high", "gpus_per_node": 8, "nodes": 2,
                "cpus_per_task": 16, "mem_gb": 200, "timeout_min": 600, "array_parallelism": 2,
                "setup": ["module load cuda/12.4"], "slurm_additional_parameters": {"constraint": "a100"}}
    exp = load_experiment(_config(tmp_path, executor, out=str(root),
                                  launcher={"kind": "accelerate", "config_file": "configs/accelerate/ddp.yaml"}))
    stages = plan(exp, root)
    ex = SlurmExecutor(exp)
    ex.start(root, bar=None)
    first = [s for s in stages if not s.needs]  # data and the base model's eval: same resources, one array
    ex._submit(first)
    script = (state / "job-100.sh").read_text()
    for line in ("--array=0-1%2", "--partition=gpu", "--account=clo", "--qos=high", "--gpus-per-node=1",
                 "--nodes=1", "--cpus-per-task=16", "--mem=200GB", "--time=600", "--constraint=a100",
                 "--job-name=langshift-demo", "module load cuda/12.4"):
        assert line in script, line
    trains = [s for s in stages if s.kind == "train"]
    ex._submit(trains)
    script = (state / "job-101.sh").read_text()
    assert f"--array=0-{len(trains) - 1}%2" in script and "--nodes=2" in script and "--gpus-per-node=8" in script
    assert "--ntasks-per-node=1" in script  # one task per node: accelerate launch starts the GPU processes

    # the parent is gone; SLURM says: the first array still runs, one training job has failed
    jobs = {s.label: read_jsonl(root / "logs" / f"{s.kind}-{s.directory(root).name}" / JOBS)[0]["job_id"]
            for s in first + trains}
    failed = jobs[trains[0].label]
    (state / "state-100").write_text("100_[0-1]|RUNNING|gpu07\n")
    (state / "state-101").write_text(f"{failed}|FAILED|gpu08\n")
    again = SlurmExecutor(exp)
    again.start(root, bar=None)
    adopted = again._adopt(stages)
    assert {t.stage.label for t in adopted.values()} == {s.label for s in first + trains[1:]}
    assert not (state / "job-102.sh").exists()  # nothing submitted again


def test_multi_node_rendezvous_from_the_slurm_environment():
    assert expand_nodelist("gpu[03-04,10],login1") == ["gpu03", "gpu04", "gpu10", "login1"]
    env = {"SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NODEID": "1",
           "SLURM_JOB_ID": "4242", "SLURM_GPUS_ON_NODE": "8"}
    assert machine_args(env) == ["--num_machines", "2", "--machine_rank", "1", "--main_process_ip", "gpu07",
                                 "--main_process_port", "29742", "--num_processes", "16"]
    assert "--num_processes" not in machine_args(env, given=["--num_processes", "12"])  # the config's own
    assert machine_args({"SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0"}) == []  # one node: the config file's


@pytest.mark.parametrize("path", sorted((DEMO.parent / "paper").glob("*.yaml")), ids=lambda p: p.name)
def test_paper_configs_commented_slurm_block_validates(tmp_path, path):
    lines, out, inside = path.read_text().splitlines(), [], False
    for line in lines:  # uncomment the `# executor:` block
        inside = line.startswith("# executor:") or (inside and line.startswith("#   "))
        out.append(line[2:] if inside else line)
    assert "executor:" in out
    uncommented = tmp_path / path.name
    uncommented.write_text("\n".join(out) + "\n")
    exp = load_experiment(uncommented)
    assert exp.executor.kind == "slurm" and exp.executor.gpus_per_node == 8
