"""Train CLO and SFT on SmolLM2 from a datasets.Dataset, then print the paired CLO − SFT differences."""
import sys

import datasets

from langshift import CLOConfig, CLOTrainer, compare, evaluate, records_from
from langshift.data.seed import demo_english

model = sys.argv[1] if len(sys.argv) > 1 else "smollm2"  # the embedded SmolLM2-135M-Instruct
ds = datasets.Dataset.from_list(demo_english("sw")[:16])  # 16 English/Swahili instruction pairs
results = {}
for method in ("clo", "sft"):  # one trainer for every method; the paper's hyper-parameters by default
    args = CLOConfig(output_dir=f"runs/py/{method}", method=method, max_steps=2)
    trainer = CLOTrainer(model, args=args, train_dataset=records_from(ds, lang="sw"))
    trainer.train()
    trainer.save_model(f"runs/py/{method}/model")
    results[method] = evaluate(f"runs/py/{method}/model", lang="sw", tasks=["fidelity", "langpref"], limit=10,
                               max_new_tokens=48)
for c in compare(results["clo"], results["sft"], name_a="CLO", name_b="SFT"):
    print(c["verdict"])
