"""Sample images (or texts) for hover thumbnails: found through the run's data set, packed in one sprite.

The store keeps each sample's ``index`` (its position in the original data set); the run's
``config.yaml`` names the data set. The report reloads it (built-in sets load in
milliseconds; file-based ones read the user's files) and looks the images up by index. All
thumbnails of a plot travel as ONE small PNG sprite sheet, not one image per point, so the
page stays light: 450 digits are a 168 × 168 PNG of a few kB.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.report.collect import ModelInfo, RunInfo

MAX_SIDE = 32          # thumbnails are box-downsampled to at most this many pixels a side
MAX_THUMBNAILS = 4000  # beyond this a projection's points show no image (the page would grow)


class SampleImages:
    """The input images of a run's captured samples, loaded once on first use.

    Parameters
    ----------
    run : RunInfo
    data : ArrayDataset or (train, test), optional
        The data set to take images from; default: the one ``config.yaml`` names, split as
        the capture was.
    """

    def __init__(self, run: RunInfo, data: Any = None):
        self.run = run
        self._given = data
        self._dataset: Any = None
        self._tried = False
        self.note: str | None = None  # why there are no thumbnails, when there are none

    def dataset(self) -> Any:
        """The data set the thumbnails come from, or None when it cannot be loaded (tried once)."""
        if self._tried:
            return self._dataset
        self._tried = True
        data = self._given
        try:
            if data is None:
                cfg = self.run.config or {}
                dcfg = cfg.get("data") or {}
                if not dcfg.get("name"):
                    self.note = "no data set named (no config.yaml); pass data= to write_report for thumbnails"
                    return None
                from neuralatlas.data import load

                data = load(dcfg["name"], path=dcfg.get("path"), **(dcfg.get("options") or {}))
                split = (cfg.get("capture") or {}).get("split", "test")
                data = data[1] if split == "test" else data[0]
            elif isinstance(data, tuple):
                split = ((self.run.config or {}).get("capture") or {}).get("split", "test")
                data = data[1] if split == "test" else data[0]
        except Exception as err:  # noqa: BLE001 - a missing data file must not stop the report
            self.note = f"data set not loadable for thumbnails: {err}"
            return None
        self._dataset = data
        return data

    def images(self, model: ModelInfo, rows: np.ndarray) -> np.ndarray | None:
        """Images ``[n, C, H, W]`` of the store's sample ``rows``; None without image inputs."""
        index = _store_index(model.store.path) if model.store is not None else None
        if index is None:
            return None
        return self.by_index(index[np.asarray(rows, dtype=np.int64)])

    def by_index(self, index: np.ndarray) -> np.ndarray | None:
        """Images ``[n, C, H, W]`` of the samples with these data-set ``index`` values.

        None when the data set cannot be loaded, is not images, or lacks a sample
        (``self.note`` says which).
        """
        data = self.dataset()
        if data is None:
            return None
        if getattr(data, "inputs", None) is None:  # text (or other non-array) data: no images
            if getattr(data, "texts", None) is None:
                self.note = f"the data set {getattr(data, 'name', '')!r} has no input arrays; no thumbnails"
            return None
        inputs = np.asarray(data.inputs)
        if inputs.ndim != 4 or inputs.shape[1] not in (1, 3):
            self.note = f"inputs of shape {inputs.shape[1:]} are not images; no thumbnails"
            return None
        wanted = np.asarray(index, dtype=np.int64)
        have = np.asarray(data.index, dtype=np.int64)
        order = np.argsort(have, kind="stable")
        pos = np.clip(np.searchsorted(have, wanted, sorter=order), 0, len(order) - 1)
        found = have[order[pos]] == wanted
        if not found.all():
            self.note = (f"{int((~found).sum())} projected samples are not in the data set"
                         f" {getattr(data, 'name', '')!r}; no thumbnails")
            return None
        return inputs[order[pos]]


    def texts(self, store_path: Path | None, rows: np.ndarray, index: np.ndarray) -> list[str] | None:
        """The text of each projected point, or None when the run's data is not text.

        Where it comes from (see CONTRIBUTING.md, "Text data"): token rows of the store
        (sample-table columns ``sample``, ``position``, ``token``) show the token in its
        context, built from the neighbouring token rows of the same sample; sample rows show
        the sentence, from the sample table's ``text`` column, else from the run's data set
        (a data set with ``texts``, such as ``neuralatlas.data.topics``), matched by ``index``.
        """
        table = _store_table(store_path) if store_path is not None else None
        rows = np.asarray(rows, dtype=np.int64)
        if table is not None and (len(rows) and rows.max() >= len(table) or "index" in table.columns
                                  and not np.array_equal(table["index"].to_numpy()[rows], np.asarray(index))):
            table = None  # the projection came from another store: its rows do not name these samples
        if table is not None and {"sample", "position"} <= set(table.columns):  # token rows
            if "token" not in table.columns:
                tok = getattr(self.dataset(), "tokenizer", None)
                if "token_id" not in table.columns or tok is None:
                    return None  # a token row's index is not a sentence's: never guess one
                table = table.assign(token=tok.convert_ids_to_tokens(table["token_id"].astype(int).tolist()))
            return tokens_in_context(table, rows)
        if table is not None and "text" in table.columns:
            return [str(t) for t in table["text"].to_numpy()[rows]]
        data = self.dataset()
        texts = getattr(data, "texts", None) if data is not None else None
        if texts is None:
            return None
        have = np.asarray(data.index, dtype=np.int64)
        lookup = {int(i): k for k, i in enumerate(have)}
        wanted = np.asarray(index, dtype=np.int64)
        missing = [int(i) for i in wanted if int(i) not in lookup]
        if missing:
            self.note = (f"{len(missing)} projected samples are not in the data set {getattr(data, 'name', '')!r}"
                         f" (e.g. index {missing[0]}); no texts on hover")
            return None
        return [str(texts[lookup[int(i)]]) for i in wanted]


CONTEXT_TOKENS = 6  # tokens shown on each side of a token row's token


def tokens_in_context(table: Any, rows: np.ndarray, context: int = CONTEXT_TOKENS) -> list[str]:
    """``"… ran the [marathon] in just …"`` for each token row: its token in brackets, in context.

    The context is the tokens around it in the same sample (from the sample table's ``sample``, ``position``
    and ``token`` columns).
    """
    sample = table["sample"].to_numpy()
    position = table["position"].to_numpy()
    token = table["token"].astype(str).to_numpy()
    order = np.lexsort((position, sample))
    where = np.empty(len(order), np.int64)
    where[order] = np.arange(len(order))
    out = []
    for r in np.asarray(rows, dtype=np.int64):
        k = where[r]
        lo, hi = k, k
        while lo > 0 and sample[order[lo - 1]] == sample[r] and k - lo < context:
            lo -= 1
        while hi + 1 < len(order) and sample[order[hi + 1]] == sample[r] and hi - k < context:
            hi += 1
        words = [f"[{token[order[j]]}]" if j == k else token[order[j]] for j in range(lo, hi + 1)]
        starts = lo == 0 or sample[order[lo - 1]] != sample[r]
        ends = hi + 1 == len(order) or sample[order[hi + 1]] != sample[r]
        out.append(("" if starts else "… ") + " ".join(words) + ("" if ends else " …"))
    return out


def _store_table(store_path: Path) -> Any:
    from neuralatlas.store import ActivationStore

    try:
        return ActivationStore.open(store_path).samples
    except Exception:  # noqa: BLE001 - an unreadable store only costs the hover texts
        return None


def _store_index(store_path: Path) -> np.ndarray | None:
    from neuralatlas.store import ActivationStore

    try:
        return np.asarray(ActivationStore.open(store_path).samples["index"], dtype=np.int64)
    except Exception:  # noqa: BLE001 - an unreadable store only costs the thumbnails
        return None


def downsample(images: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Box-downsample ``[n, C, H, W]`` so no side exceeds ``max_side`` (vectorised)."""
    n, c, h, w = images.shape
    f = max(1, math.ceil(max(h, w) / max_side))
    if f == 1:
        return images
    ph, pw = (-h) % f, (-w) % f
    padded = np.pad(images, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
    return padded.reshape(n, c, (h + ph) // f, f, (w + pw) // f, f).mean(axis=(3, 5))


def sprite(images: np.ndarray, max_side: int = MAX_SIDE) -> dict[str, Any]:
    """One PNG holding every thumbnail in a grid; returns ``{uri, w, h, cols}``.

    Thumbnail ``i`` sits at column ``i % cols``, row ``i // cols``.

    Example
    -------
    >>> s = sprite(np.zeros((10, 1, 8, 8)))
    >>> s["w"], s["h"], s["cols"]
    (8, 8, 4)
    """
    from PIL import Image

    imgs = downsample(np.asarray(images, dtype=np.float32), max_side)
    lo, hi = float(np.nanmin(imgs)), float(np.nanmax(imgs))
    if lo < 0 or hi > 1:  # not in [0, 1]: stretch, so any input range shows
        imgs = (imgs - lo) / (hi - lo or 1.0)
    n, c, h, w = imgs.shape
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * cols, c, h, w), np.float32)
    grid[:n] = imgs
    sheet = grid.reshape(rows, cols, c, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    pixels = np.clip(np.rint(np.nan_to_num(sheet) * 255), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if c == 1 else pixels)  # uint8: "L" or "RGB"
    buf = io.BytesIO()
    image.save(buf, format="PNG")  # optimize=True: 5 % smaller, 6x slower
    return {"uri": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
            "w": int(w), "h": int(h), "cols": int(cols)}
