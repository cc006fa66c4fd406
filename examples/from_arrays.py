"""No PyTorch needed: activations from any framework (TensorFlow, JAX, numpy) into a store.

    python examples/from_arrays.py [OUT_DIR]

Every analysis and figure works on the store; torch is never imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import neuralatlas as na

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/from_arrays")
rng = np.random.default_rng(0)
labels = rng.integers(0, 3, 600)
# Stand-ins for a model's layer outputs: the deeper layer separates the classes better.
hidden1 = rng.normal(size=(600, 32)) + 0.5 * labels[:, None]
hidden2 = np.maximum(rng.normal(size=(600, 16)) + 2.0 * (labels[:, None] == np.arange(16) % 3), 0)

store = na.ActivationStore.from_arrays(out / "acts.zarr", {"dense_1": hidden1, "dense_2": hidden2},
                                       labels=labels, classes=["cat", "dog", "fox"], overwrite=True)
profiles = na.naps(store, by="label")
contrast = na.contrastive_naps(profiles)
print("contrastive NAP of dense_2, class 'dog':", np.round(contrast.values("dense_2")[1][:6], 2))
for layer in store.layers:
    points = np.asarray(store.activations(layer))
    print(f"{layer}: neighbourhood hit {na.neighborhood_hit(points, labels, k=6):.3f}")
assert "torch" not in sys.modules
