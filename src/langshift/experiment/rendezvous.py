"""Multi-node training in a SLURM allocation: each node's `accelerate launch` arguments.

submitit starts a training stage's job function once per node (one task per node) and, on each node,
`accelerate launch` starts one process per GPU. The nodes meet at the allocation's first host; each
knows its rank from SLURM (`SLURM_NODEID`), so no node has to tell another anything. Flags the run
config already passes (`launcher.num_processes`, `launcher.args`) are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

BASE_PORT = 29500  # torch.distributed's usual port; offset by the job id so two jobs on one node differ


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compact host list -> host names: 'gpu[03-04,07],login1' -> [gpu03, gpu04, gpu07, login1]."""
    hosts: list[str] = []
    for prefix, ranges, plain in re.findall(r"([^,\[]+)\[([^\]]+)\]|([^,\[\]]+)", nodelist):
        if plain:
            hosts.append(plain)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            hosts += [f"{prefix}{n:0{len(low)}d}" for n in range(int(low), int(high or low) + 1)]
    return hosts


def _gpus_on_node(env: Mapping[str, str]) -> int:
    if env.get("SLURM_GPUS_ON_NODE"):
        return int(env["SLURM_GPUS_ON_NODE"])
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return len(visible) or 1


def machine_args(env: Mapping[str, str], given: Sequence[str] = ()) -> list[str]:
    """`accelerate launch` flags that place this node in a multi-node allocation ([] on one node)."""
    nodes = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 1)
    if nodes <= 1:
        return []
    hosts = expand_nodelist(env["SLURM_JOB_NODELIST"])
    port = env.get("MASTER_PORT") or BASE_PORT + int(env.get("SLURM_JOB_ID") or 0) % 1000
    wanted = {"--num_machines": nodes, "--machine_rank": env.get("SLURM_NODEID", "0"),
              "--main_process_ip": hosts[0], "--main_process_port": port,
              "--num_processes": nodes * _gpus_on_node(env)}
    return [str(x) for flag, value in wanted.items() if flag not in given for x in (flag, value)]
