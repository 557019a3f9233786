import numpy as np
import pytest

from keras_nmt.plotting import plot_attention

SOURCE = ["[START]", "¿", "dónde", "está", "tom", "?", "[END]"]
TARGET = ["where", "is", "tom", "?", "[END]"]


@pytest.fixture
def weights(rng):
    w = rng.random((len(TARGET), len(SOURCE))).astype("float32")
    return w / w.sum(-1, keepdims=True)


def test_labels_and_image_data(weights):
    figure = plot_attention(weights, SOURCE, TARGET, title="demo")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == SOURCE
    assert [t.get_text() for t in ax.get_yticklabels()] == TARGET
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), weights)
    assert ax.get_title() == "demo"
    # A colorbar: a second axes holding the scale.
    assert len(figure.axes) == 2
    assert all(t.get_rotation() == 90 for t in ax.get_xticklabels())


def test_saves_png(weights, tmp_path):
    path = tmp_path / "attention.png"
    plot_attention(weights, SOURCE, TARGET).savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draws_into_given_axes(weights):
    from matplotlib.figure import Figure

    figure = Figure()
    ax = figure.add_subplot()
    assert plot_attention(weights, SOURCE, TARGET, ax=ax) is figure
    assert [t.get_text() for t in ax.get_xticklabels()] == SOURCE


def test_accepts_lists_and_tuples():
    figure = plot_attention([[1.0, 0.0]], ("a", "b"), ["x"])
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]


def test_shape_mismatch_says_what_was_received(weights):
    with pytest.raises(ValueError, match=r"shape \(5, 7\).*5 target.*6 source"):
        plot_attention(weights, SOURCE[:-1], TARGET)
    with pytest.raises(ValueError, match=r"expected shape \(4, 7\)"):
        plot_attention(weights, SOURCE, TARGET[:-1])


def test_rejects_non_2d_weights(weights):
    with pytest.raises(ValueError, match=r"2-D.*received shape \(1, 5, 7\)"):
        plot_attention(weights[None], SOURCE, TARGET)


def test_rejects_a_single_string_as_labels(weights):
    with pytest.raises(ValueError, match="list of token strings"):
        plot_attention(weights, "dónde está tom", TARGET)
