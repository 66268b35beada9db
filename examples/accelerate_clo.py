"""CLO under `accelerate launch`: one process per GPU, or, on a machine without GPUs, DDP over CPU
processes (accelerate's multi-GPU launcher runs torchrun; each process trains on the CPU over gloo).

    accelerate launch --multi_gpu --num_processes 2 examples/accelerate_clo.py [MODEL]

`batch_size` counts records per optimizer step over all processes (8, the paper's), so the step is the
same whatever the process count; every process reads the reference cache the first one fills.
"""
import sys

from langshift import CLOConfig, CLOTrainer, records_from
from langshift.data.seed import demo_english

model = sys.argv[1] if len(sys.argv) > 1 else "smollm2"
args = CLOConfig(output_dir="runs/accelerate/clo", method="clo", batch_size=8, max_steps=2)
trainer = CLOTrainer(model, args=args, train_dataset=records_from(demo_english("sw")[:24], lang="sw"))
trainer.train()
trainer.save_model("runs/accelerate/clo/model")  # written by the main process only
if trainer.is_world_process_zero():
    print(f"trained on {trainer.args.world_size} processes: {trainer.state.global_step} steps, "
          f"{trainer.facts['micro_batch_size']} records per forward per process")
