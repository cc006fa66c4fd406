"""Quickstart: train a small CNN on the built-in digits, capture it, and look inside.

    python examples/quickstart.py [OUT_DIR]

Writes a run folder with checkpoints, an activation store, NAPs, a projection and figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import neuralatlas as na
from neuralatlas.data import digits
from neuralatlas.plots import save_figure
from neuralatlas.zoo import cnn, train

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart")
train_set, test_set = digits()

model = cnn(seed=0)
result = train(model, train_set, test_set, epochs=5, lr=3e-3, run_dir=out)
print(f"test accuracy after {len(result.metrics) - 1} epochs: {result.metrics[-1]['test_accuracy']:.3f}")

# Every layer, with the gradient of the true class's logit, once per checkpoint epoch.
store = na.capture(model, test_set, out=out / "acts.zarr", gradients=True, checkpoints=out)
print(store)

# Neuron Activation Profiles: each unit's mean activation per class.
profiles = na.naps(store, by="label", layers=["conv2", "fc1"])
print("fc1 NAP shape:", profiles.values("fc1").shape)

# How the classes separate layer by layer (Rauber et al. 2017), t-SNE aligned across layers.
projection = na.project(store, layers=["flatten", "fc1", "out"], method="pca", n=300)
print(projection.quality_table()[["layer", "neighborhood_hit", "trustworthiness"]])

from neuralatlas.plots.projection import inter_layer_evolution  # noqa: E402

save_figure(inter_layer_evolution(projection), out / "figures" / "quickstart_layers")
print(f"figures in {out / 'figures'}")
