"""The one result protocol: every analysis result saves, loads, summarises and shows itself the same way.

Modelled on scikit-learn's one mixin for every estimator: a result class inherits
:class:`Result` and implements three things — ``save(directory) -> directory`` (its files in
a folder of its own), ``load(directory)`` (a classmethod, the inverse) and ``summary()`` (a
small dict of plain numbers and names). The mixin derives the rest: strict-JSON checking of
the summary, ``to_frame()``, an escaped ``_repr_html_`` and ``equals``.

All JSON goes through :func:`write_json` / :func:`read_json`: strict (no NaN or infinity:
they become ``null``), tagged with the result's format and version and the versions of the
packages that wrote it, so a folder opened a year later says what made it. File names made
from layer or group names go through :func:`safe_name`.

This module sits at the bottom of the data flow: it imports only numpy and the standard
library (pandas lazily, for ``to_frame``).
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from neuralatlas.errors import AnalysisError, NeuralAtlasError, StoreError

FORMAT_KEY = "neuralatlas_format"
"""The key of the format tag :func:`write_json` adds to every JSON object it writes."""

R = TypeVar("R", bound="Result")


class ResultFormatError(NeuralAtlasError):
    """A saved result is not the kind, or is a newer format version, than the reader expects."""


class ResultNotFoundError(AnalysisError, StoreError):
    """A folder holds no saved result of the kind asked for: a file its ``load`` needs is missing.

    It is both an :class:`~neuralatlas.errors.AnalysisError` and a
    :class:`~neuralatlas.errors.StoreError`, the two classes the result classes raised for this
    before they shared :meth:`Result._required`, so code catching either keeps working.
    """


# --------------------------------------------------------------------------------- JSON
def jsonable(value: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """``value`` as plain JSON types: numpy to Python, NaN and infinity to ``None``.

    Dicts (keys become strings), lists, tuples, numpy arrays and scalars, paths and dataclasses
    are converted; anything else is a ``TypeError`` (a ``repr`` in a results file would look
    like data and not be), unless ``default`` converts it: settings that record what was
    used (a baseline tensor, a callable target) pass ``default=repr`` on purpose.

    Examples
    --------
    >>> jsonable({"a": np.float32(0.5), "b": [1, float("nan")], 3: np.arange(2)})
    {'a': 0.5, 'b': [1, None], '3': [0, 1]}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), default)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, default) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v, default) for v in items]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return jsonable(value.item(), default)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, default)
    if isinstance(value, complex):
        raise TypeError(f"a complex number ({value!r}) has no JSON form; store its real and imaginary parts")
    if default is not None:
        return jsonable(default(value))
    raise TypeError(f"{type(value).__name__} is not JSON-able: convert it (to a number, a string or a list) "
                    "before writing it to a results file")


def package_versions() -> dict[str, str]:
    """Versions of neuralatlas and of the numeric packages already imported (no import is forced)."""
    from neuralatlas import __version__

    versions = {"neuralatlas": __version__, "numpy": np.__version__,
                "python": ".".join(map(str, sys.version_info[:3]))}
    for name in ("torch", "zarr", "jax", "flax", "keras", "sklearn", "captum", "transformers"):
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            versions[name] = version
    return versions


def dumps(payload: Any, *, indent: int | None = 1) -> str:
    """Strict JSON text of ``payload`` (through :func:`jsonable`; ``allow_nan=False``)."""
    return json.dumps(jsonable(payload), indent=indent, allow_nan=False, ensure_ascii=False)


def write_json(path: str | os.PathLike[str], payload: Mapping[str, Any], *, kind: str | None = None,
               version: int = 1, indent: int | None = 1) -> Path:
    """Write ``payload`` (a mapping) as strict JSON with a format tag; return the path.

    Parameters
    ----------
    path : path-like
        The file; its folder is created.
    payload : mapping
        The content. NaN and infinity are written as ``null``; numpy values as numbers.
    kind : str, optional
        What the file holds (``"naps"``, ``"projection"`` …); :func:`read_json` can require it.
    version : int
        The format version of ``kind``; a reader refuses a newer one.
    indent : int or None
        Indentation; None writes one line.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> p = write_json(Path(tempfile.mkdtemp()) / "s.json", {"hit": float("nan")}, kind="demo")
    >>> read_json(p, kind="demo")
    {'hit': None}
    """
    if not isinstance(payload, Mapping):
        raise TypeError(f"write_json writes a mapping (a JSON object); got {type(payload).__name__}")
    if FORMAT_KEY in payload:
        raise ValueError(f"{FORMAT_KEY!r} is the format tag's key and cannot be a key of the payload")
    tag = {"kind": kind, "version": int(version), "versions": package_versions()}
    text = dumps({FORMAT_KEY: tag, **payload}, indent=indent)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def read_json(path: str | os.PathLike[str], *, kind: str | None = None, version: int = 1) -> dict[str, Any]:
    """Read a JSON object written by :func:`write_json` (or older, untagged); the tag is removed.

    Raises
    ------
    ResultFormatError
        When ``kind`` is given and the file says it holds something else, or the file's
        format version is newer than ``version`` (written by a newer neuralatlas).
    """
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ResultFormatError(f"{path} holds a JSON {type(data).__name__}, not an object")
    tag = data.pop(FORMAT_KEY, None)
    if tag is not None:
        if kind is not None and tag.get("kind") not in (None, kind):
            raise ResultFormatError(f"{path} holds a {tag.get('kind')!r} result, not {kind!r}: "
                                    "point the loader at the folder of the result you mean")
        if int(tag.get("version", 1)) > version:
            raise ResultFormatError(f"{path} is format {tag.get('kind')!r} version {tag['version']}, newer than "
                                    f"this neuralatlas reads ({version}); upgrade neuralatlas "
                                    f"(it was written by {tag.get('versions', {}).get('neuralatlas', '?')})")
    return data


# ------------------------------------------------------------------------------ file names
_SAFE = frozenset("-_.")


def safe_name(name: object) -> str:
    """A layer, group or method name as a file name: letters, digits, ``-``, ``_``, ``.`` kept, the rest ``_``.

    Examples
    --------
    >>> safe_name("blocks.3/attn:q")
    'blocks.3_attn_q'
    """
    text = "".join(c if c.isalnum() or c in _SAFE else "_" for c in str(name))
    if text in ("", ".", ".."):
        text = text.replace(".", "_") or "_"
    return text


def files_of(owner: str, directory: str | os.PathLike[str], stem: str, name: str | None = None) -> Path:
    """Where a result's files are: ``directory/stem`` (add ``.npz``/``.json``), the protocol's layout.

    ``name`` is the deprecated second argument of older ``load(directory, name)`` calls: it
    warns and finds ``directory/name/stem`` (a folder per result) or, from older runs, the
    flat ``directory/name.*`` files several results once shared.
    """
    directory = Path(directory)
    if name is None:
        return directory / stem
    import warnings

    warnings.warn(f"{owner}.load(directory, {name!r}) is deprecated since 0.2: every result has a folder of its "
                  f"own; use {owner}.load(directory / {name!r})", DeprecationWarning, stacklevel=3)
    for folder in (directory / name, directory / safe_name(name)):  # as given, or as save(directory, name) made it
        if (folder / f"{stem}.json").is_file():
            return folder / stem
    return directory / name


def folder_of(owner: str, directory: str | os.PathLike[str], name: str | None = None) -> Path:
    """The folder a result saves into: ``directory``; with the deprecated ``name``, ``directory/name``.

    Older ``save(directory, name)`` calls put several results' files side by side; now every
    result has a folder of its own, so ``name`` becomes a subfolder (with a warning).
    """
    directory = Path(directory)
    if name is None:
        return directory
    import warnings

    warnings.warn(f"{owner}.save(directory, {name!r}) is deprecated since 0.2: every result has a folder of its "
                  f"own; use {owner}.save(directory / {name!r})", DeprecationWarning, stacklevel=3)
    return directory / safe_name(name)


# -------------------------------------------------------------------------------- protocol
def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape:
            return False
        if a_arr.dtype.kind in "fc" or b_arr.dtype.kind in "fc":
            return bool(np.allclose(a_arr, b_arr, rtol=1e-6, atol=0, equal_nan=True))
        return bool(np.array_equal(a_arr, b_arr))
    if isinstance(a, Result) and isinstance(b, Result):
        return a.equals(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=0.0)
    if hasattr(a, "equals") and callable(a.equals) and type(a) is type(b):  # DataFrame, Series
        return bool(a.equals(b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):  # a dataclass of arrays has an ambiguous ==
        return type(a) is type(b) and _values_equal(_fields(a), _fields(b))
    return bool(a == b)


def _fields(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return dict(vars(obj))


class Result:
    """Mixin for every analysis result: ``save``/``load``/``summary`` given, the rest derived.

    Subclasses set ``kind`` (the format tag of their files, a class attribute: an instance
    attribute of the same name, such as NAPs' ``"contrastive"``, does not change the tag) and
    implement ``save(directory) -> directory``, the classmethod ``load(directory)`` and
    ``summary() -> dict``. They may override ``to_frame()`` (default: the summary as one row)
    and ``_html_title``. :meth:`equals` compares every attribute, private ones included
    (results keep their arrays in ``_values`` and the like); caches named in
    ``_equals_ignore`` are skipped.
    """

    kind: ClassVar[str] = "result"
    format_version: ClassVar[int] = 1
    _equals_ignore: ClassVar[frozenset[str]] = frozenset()

    # -- implemented by each result ---------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the result into ``directory`` (created); return it."""
        raise NotImplementedError(f"{type(self).__name__}.save")

    @classmethod
    def load(cls: type[R], directory: str | os.PathLike[str]) -> R:
        """Read a result written by :meth:`save`."""
        raise NotImplementedError(f"{cls.__name__}.load")

    def summary(self) -> dict[str, Any]:
        """The headline numbers and names, as strict-JSON-able values."""
        raise NotImplementedError(f"{type(self).__name__}.summary")

    # -- derived ------------------------------------------------------------------------
    def summary_json(self) -> dict[str, Any]:
        """:meth:`summary` through :func:`jsonable` (what ``summary.json`` holds)."""
        return jsonable(self.summary())

    def write_summary(self, directory: str | os.PathLike[str], name: str = "summary.json") -> Path:
        """Write :meth:`summary` into ``directory/name`` with this result's format tag."""
        return self.write_json(Path(directory) / name, self.summary_json())

    def write_json(self, path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
        """:func:`write_json` with this result's format tag (the class's ``kind`` and version)."""
        cls = type(self)
        return write_json(path, payload, kind=cls.kind, version=cls.format_version)

    @classmethod
    def _required(cls, directory: str | os.PathLike[str], *names: str, what: str, fix: str) -> Path:
        """``directory / names[0]``, once every file in ``names`` is known to be there.

        The one check a ``load`` makes before reading: a folder without the files is not a
        result of this kind, and the error says which files are missing, what the folder holds
        instead, and how to write the result.

        Parameters
        ----------
        directory : str or os.PathLike
            The folder :meth:`save` wrote (or the older layout's folder a ``load`` resolved).
        *names : str
            The files ``load`` reads, the main one first (``"naps.json"``, ``"values.npz"``).
        what : str
            The result in words, for the message (``"NAPs"``, ``"unit statistics"``).
        fix : str
            How to write one (``"compute them with neuralatlas.naps(store).save(dir)"``).

        Returns
        -------
        Path
            ``directory / names[0]``.

        Raises
        ------
        ResultNotFoundError
            A file of ``names`` is not in ``directory``.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Result._required(d, "result.json", what="result", fix="save one with result.save(d)")
        Traceback (most recent call last):
        ...
        neuralatlas.results.ResultNotFoundError: No result in ...: result.json is missing (the folder is empty); ...
        """
        if not names:
            raise TypeError("_required() needs the name of at least one file")
        folder = Path(directory)
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            if not folder.is_dir():
                holds = "the folder does not exist" if not folder.exists() else "it is a file, not a folder"
            else:
                found = sorted(p.name for p in folder.iterdir())
                holds = (f"the folder holds {', '.join(found[:8])}{', ...' if len(found) > 8 else ''}" if found
                         else "the folder is empty")
            verb = "is" if len(missing) == 1 else "are"
            raise ResultNotFoundError(f"No {what} in {folder}: {' and '.join(missing)} {verb} missing ({holds}); "
                                      f"{fix.rstrip('.')}.")
        return folder / names[0]

    @classmethod
    def read_json(cls, path: str | os.PathLike[str]) -> dict[str, Any]:
        """:func:`read_json` requiring this class's format tag (untagged files of older runs pass)."""
        return read_json(path, kind=cls.kind, version=cls.format_version)

    def to_frame(self) -> Any:
        """The result as a pandas DataFrame (default: the scalar entries of the summary as one row)."""
        import pandas as pd

        flat = {k: v for k, v in self.summary_json().items() if not isinstance(v, (dict, list))}
        return pd.DataFrame([flat])

    def table(self) -> Any:
        """Deprecated alias of :meth:`to_frame` (the one name for a result's table)."""
        import warnings

        warnings.warn(f"{type(self).__name__}.table() is deprecated since 0.2; use .to_frame() "
                      "(the old name goes in the next release)", DeprecationWarning, stacklevel=2)
        return self.to_frame()

    @property
    def _html_title(self) -> str:
        return type(self).__name__

    def _repr_html_(self) -> str:
        """A small escaped table of the summary (names in results may hold any text)."""
        rows = []
        for key, value in self.summary_json().items():
            shown = value if not isinstance(value, (dict, list)) else json.dumps(value, ensure_ascii=False)
            text = str(shown)
            if len(text) > 200:
                text = text[:197] + "…"
            rows.append(f"<tr><th style='text-align:left'>{html.escape(str(key))}</th>"
                        f"<td>{html.escape(text)}</td></tr>")
        return (f"<div class='neuralatlas-result'><b>{html.escape(self._html_title)}</b>"
                f"<table>{''.join(rows)}</table></div>")

    def equals(self, other: object) -> bool:
        """Whether ``other`` is the same kind of result holding the same values (arrays to 1e-6)."""
        if type(other) is not type(self):
            return False
        return _values_equal(self._equals_state(), other._equals_state())  # type: ignore[attr-defined]

    def _equals_state(self) -> dict[str, Any]:
        """What :meth:`equals` compares: every attribute but the caches in ``_equals_ignore``.

        A result whose settings hold objects that are saved as text (a tensor baseline kept
        as its ``repr``) overrides this to compare them as written.
        """
        skip = type(self)._equals_ignore
        return {k: v for k, v in _fields(self).items() if k not in skip}


def result_classes() -> list[type[Result]]:
    """Every :class:`Result` subclass defined so far (import the modules first), sorted by name."""
    found: dict[str, type[Result]] = {}
    stack = list(Result.__subclasses__())
    while stack:
        cls = stack.pop()
        found[f"{cls.__module__}.{cls.__qualname__}"] = cls
        stack.extend(cls.__subclasses__())
    return [found[k] for k in sorted(found)]
