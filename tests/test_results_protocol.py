"""The bottom of the result protocol: strict JSON, the format tag, safe names, the shared rules."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from neuralatlas.errors import AnalysisError, ConfigError, StoreError
from neuralatlas.results import (
    FORMAT_KEY,
    Result,
    ResultFormatError,
    ResultNotFoundError,
    jsonable,
    read_json,
    safe_name,
    write_json,
)
from neuralatlas.vocabulary import renamed_parameter, resolve_n_samples


def test_jsonable_turns_nonfinite_into_null_and_numpy_into_python():
    value = {"nan": np.float32("nan"), "inf": -math.inf, "arr": np.array([[1, 2]]), 1: (np.int64(3), True)}
    out = jsonable(value)
    assert out == {"nan": None, "inf": None, "arr": [[1, 2]], "1": [3, True]}
    json.dumps(out, allow_nan=False)  # strict


def test_jsonable_refuses_what_would_become_a_repr():
    with pytest.raises(TypeError, match="not JSON-able"):
        jsonable({"x": object()})


def test_write_json_is_strict_tagged_and_read_back(tmp_path):
    path = write_json(tmp_path / "a" / "s.json", {"t": float("nan"), "n": np.int32(4)}, kind="naps", version=2)
    raw = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    assert raw[FORMAT_KEY]["kind"] == "naps" and raw[FORMAT_KEY]["version"] == 2
    assert raw[FORMAT_KEY]["versions"]["numpy"] == np.__version__
    assert read_json(path, kind="naps", version=2) == {"t": None, "n": 4}
    with pytest.raises(ResultFormatError, match="not 'projection'"):
        read_json(path, kind="projection", version=2)
    with pytest.raises(ResultFormatError, match="newer"):
        read_json(path, kind="naps", version=1)


def test_read_json_accepts_untagged_files_of_older_runs(tmp_path):
    (tmp_path / "old.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "old.json", kind="naps") == {"a": 1}


def test_safe_name_keeps_dots_and_replaces_the_rest():
    assert safe_name("features.0") == "features.0"
    assert safe_name("a/b:c d") == "a_b_c_d"
    assert safe_name("..") == "__" and safe_name("") == "_"


class _Toy(Result):
    kind = "toy"

    def __init__(self, values, layer):
        self.values, self.layer = values, layer

    def summary(self):
        return {"layer": self.layer, "mean": float(np.mean(self.values))}


def test_mixin_derives_an_escaped_html_table_and_equality():
    a = _Toy(np.array([1.0, np.nan]), "<script>x</script>")
    html = a._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert a.equals(_Toy(np.array([1.0, np.nan]), "<script>x</script>"))
    assert not a.equals(_Toy(np.array([1.0, 2.0]), "<script>x</script>"))
    assert a.to_frame().columns.tolist() == ["layer", "mean"]


def test_resolve_n_samples_has_one_meaning_for_all():
    assert resolve_n_samples(None) is None and resolve_n_samples("all") is None
    assert resolve_n_samples(np.int64(7)) == 7 and resolve_n_samples("12") == 12
    with pytest.raises(ConfigError, match="ambiguous"):
        resolve_n_samples(0)
    with pytest.raises(ConfigError, match="not a count"):
        resolve_n_samples(2.5)


def test_renamed_parameter_warns_and_forwards():
    @renamed_parameter("n", "n_samples", transform=lambda v: None if v == 0 else v)
    def f(*, n_samples=None):
        return n_samples

    with pytest.warns(DeprecationWarning, match="use n_samples"):
        assert f(n=0) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(n_samples=5) == 5
    with pytest.raises(TypeError, match="both"):
        f(n=1, n_samples=2)


def test_required_returns_the_first_file_once_all_are_there(tmp_path):
    (tmp_path / "toy.json").write_text("{}")
    (tmp_path / "toy.npz").write_bytes(b"")
    assert _Toy._required(tmp_path, "toy.json", "toy.npz", what="toy", fix="save one") == tmp_path / "toy.json"


def test_required_names_what_is_missing_what_is_there_and_the_fix(tmp_path):
    (tmp_path / "toy.json").write_text("{}")
    (tmp_path / "other.csv").write_text("")
    with pytest.raises(ResultNotFoundError) as caught:
        _Toy._required(tmp_path, "toy.json", "toy.npz", what="toy result", fix="write one with toy(...).save(dir).")
    message = str(caught.value)
    assert message == (f"No toy result in {tmp_path}: toy.npz is missing (the folder holds other.csv, toy.json); "
                       "write one with toy(...).save(dir).")
    # the two classes load raised before the helper, so callers catching either keep working
    assert isinstance(caught.value, AnalysisError) and isinstance(caught.value, StoreError)
    with pytest.raises(ResultNotFoundError, match="a.json and b.npz are missing .the folder does not exist."):
        _Toy._required(tmp_path / "nowhere", "a.json", "b.npz", what="toy", fix="save one")
    with pytest.raises(ResultNotFoundError, match="it is a file, not a folder"):
        _Toy._required(tmp_path / "toy.json", "a.json", what="toy", fix="save one")
