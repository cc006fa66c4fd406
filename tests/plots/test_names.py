"""Figure functions are named <analysis>_<what>; the old names still work and warn."""

from __future__ import annotations

import inspect
import warnings

import pytest

import neuralatlas.plots as plots

ANALYSES = ("adversarial", "architecture", "attribution", "discriminative", "featurevis", "naps",
            "projection", "similarity", "topomap", "toy")
HELPERS = {"class_colors", "figure_style", "save_figure", "symmetric_limits", "RENAMED"}


def _matrix():
    import numpy as np

    from neuralatlas.analysis.similarity.result import SimilarityMatrix

    return SimilarityMatrix(np.array([[1.0, 0.5], [0.5, 1.0]]), ["a", "b"], ["a", "b"], "linear_cka")


def test_every_public_figure_function_is_named_after_its_analysis():
    figures = [name for name in plots.__all__ if name not in HELPERS]
    assert len(figures) >= 30
    wrong = [name for name in figures if not name.startswith(tuple(f"{a}_" for a in ANALYSES))]
    assert wrong == []
    for name in figures:   # and lives in the module of that analysis
        module = inspect.getmodule(getattr(plots, name)).__name__.rsplit(".", 1)[-1]
        assert name.startswith(module + "_") or (module, name.split("_")[0]) == ("projection", "projection"), name
    assert not set(plots.RENAMED) & set(plots.__all__)


def test_old_names_warn_and_draw_the_same_figure():
    matrix = _matrix()
    with pytest.warns(DeprecationWarning, match="plot_similarity_matrix is now neuralatlas.plots.similarity_matrix"):
        old = plots.plot_similarity_matrix(matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = plots.similarity_matrix(matrix)
    assert [t.get_text() for t in old.axes[0].get_xticklabels()] == [
        t.get_text() for t in new.axes[0].get_xticklabels()
    ]
    for old_name, new_name in plots.RENAMED.items():
        alias = getattr(plots, old_name)
        assert alias.__name__ == old_name and f":func:`{new_name}`" in alias.__doc__
        assert inspect.signature(alias) == inspect.signature(getattr(plots, new_name))


def test_the_packages_own_calls_do_not_warn():
    # a caller inside neuralatlas (steps, cli) still using an old name is not a user's call
    namespace = {"__name__": "neuralatlas.steps_example", "plots": plots}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        namespace["matrix"] = _matrix()
        exec("fig = plots.plot_similarity_matrix(matrix)", namespace)
    assert namespace["fig"] is not None
