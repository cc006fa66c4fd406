"""File loaders: every format is written here in tmp_path, read back, and broken on purpose."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuralatlas.data import cifar10, fashion_mnist, image_folder, load, mnist
from neuralatlas.data.files import FASHION_MNIST_CLASSES, IDX_FILES
from neuralatlas.errors import DataError

IDX_NAMES = [*IDX_FILES["train"], *IDX_FILES["test"]]
CIFAR_NAMES = ["batches.meta", *(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]
RNG = np.random.default_rng(0)


# --- writers -------------------------------------------------------------------------------

def write_idx(file: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """The IDX format: 0x0000, type 0x08 (ubyte), ndim, big-endian uint32 dims, raw bytes."""
    magic = 0x0800 + array.ndim if magic is None else magic
    payload = (magic.to_bytes(4, "big")
               + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
               + array.astype(np.uint8).tobytes())
    file.write_bytes(gzip.compress(payload) if file.suffix == ".gz" else payload)
    return file


def mnist_arrays(n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    return {"x_train": RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": RNG.integers(0, 10, n_train, dtype=np.uint8),
            "x_test": RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": RNG.integers(0, 10, n_test, dtype=np.uint8)}


def write_mnist_idx(folder: Path, arrays: dict[str, np.ndarray], gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for name, key in zip(IDX_NAMES, ["x_train", "y_train", "x_test", "y_test"], strict=True):
        write_idx(folder / (name + suffix), arrays[key])
    return folder


def write_cifar(folder: Path, per_batch: int = 2, n_test: int = 3, protocol: int = 2):
    """Python-2 style batches: bytes keys, uint8 rows of 3072, label lists."""
    folder.mkdir(parents=True)
    data = {}
    for name in CIFAR_NAMES[1:]:
        n = n_test if name == "test_batch" else per_batch
        data[name] = (RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
                      [int(v) for v in RNG.integers(0, 10, n)])
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data[name][0],
                         b"labels": data[name][1]}, f, protocol=protocol)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR_CLASSES],
                     b"num_cases_per_batch": per_batch}, f, protocol=protocol)
    return data


def write_png(file: Path, pixels: np.ndarray) -> np.ndarray:
    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(file)
    return pixels


def assert_names_file_and_layout(error: pytest.ExceptionInfo, file: str, expected_files):
    message = str(error.value)
    assert file in message, message
    for name in expected_files:
        assert name in message, message
    assert "nothing is downloaded" in message


# --- MNIST and Fashion-MNIST ---------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_mnist_idx_round_trip(tmp_path, gz):
    arrays = mnist_arrays()
    train, test = mnist(write_mnist_idx(tmp_path, arrays, gz))
    assert train.inputs.shape == (6, 1, 28, 28) and test.inputs.shape == (4, 1, 28, 28)
    assert train.inputs.dtype == np.float32 and train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.inputs[:, 0], arrays["x_train"].astype(np.float32) / 255)
    np.testing.assert_array_equal(test.inputs[:, 0], arrays["x_test"].astype(np.float32) / 255)
    np.testing.assert_array_equal(train.labels, arrays["y_train"])
    np.testing.assert_array_equal(test.labels, arrays["y_test"])
    np.testing.assert_array_equal(test.index, np.arange(4))
    assert train.classes == [str(d) for d in range(10)]
    assert (train.name, test.name) == ("mnist:train", "mnist:test")


def test_mnist_finds_torchvision_layout_and_single_file_paths(tmp_path):
    arrays = mnist_arrays()
    raw = write_mnist_idx(tmp_path / "MNIST" / "raw", arrays, gz=True)
    for path in (tmp_path, tmp_path / "MNIST", raw / "t10k-images-idx3-ubyte.gz"):
        _, test = mnist(path)
        np.testing.assert_array_equal(test.labels, arrays["y_test"])


def test_fashion_mnist_class_names_and_torchvision_layout(tmp_path):
    arrays = mnist_arrays()
    write_mnist_idx(tmp_path / "FashionMNIST" / "raw", arrays, gz=False)
    train, _ = fashion_mnist(tmp_path)
    assert train.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                             "Shirt", "Sneaker", "Bag", "Ankle boot"] == FASHION_MNIST_CLASSES
    assert train.name == "fashion_mnist:train"
    np.testing.assert_array_equal(train.inputs[:, 0], arrays["x_train"].astype(np.float32) / 255)


def test_mnist_npz_round_trip_file_or_folder(tmp_path):
    arrays = mnist_arrays(5, 3)
    np.savez_compressed(tmp_path / "mnist.npz", **arrays)
    for path in (tmp_path / "mnist.npz", tmp_path):
        train, test = mnist(path)
        np.testing.assert_array_equal(train.inputs[:, 0], arrays["x_train"].astype(np.float32) / 255)
        np.testing.assert_array_equal(test.labels, arrays["y_test"])


@pytest.mark.parametrize("layout", ["plain", "gz", "npz"])
def test_mnist_limit_reads_the_first_samples(tmp_path, layout):
    arrays = mnist_arrays(6, 4)
    if layout == "npz":
        np.savez(tmp_path / "mnist.npz", **arrays)
    else:
        write_mnist_idx(tmp_path, arrays, gz=layout == "gz")
    train, test = mnist(tmp_path, limit=3)
    assert (len(train), len(test)) == (3, 3)
    np.testing.assert_array_equal(train.inputs[:, 0], arrays["x_train"][:3].astype(np.float32) / 255)
    np.testing.assert_array_equal(test.labels, arrays["y_test"][:3])
    assert len(mnist(tmp_path, limit=100)[1]) == 4


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_mnist_rejects_a_bad_limit(tmp_path, limit):
    write_mnist_idx(tmp_path, mnist_arrays(), gz=False)
    with pytest.raises(DataError, match="limit"):
        mnist(tmp_path, limit=limit)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_mnist_wrong_magic_number(tmp_path, gz):
    arrays = mnist_arrays()
    write_mnist_idx(tmp_path, arrays, gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    write_idx(tmp_path / name, arrays["x_train"], magic=0x0801)  # a labels magic on images
    with pytest.raises(DataError, match="0x00000801.*0x00000803") as error:
        mnist(tmp_path)
    assert_names_file_and_layout(error, name, IDX_NAMES + ["LeCun", "mnist.npz"])


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_mnist_truncated_file(tmp_path, gz):
    arrays = mnist_arrays()
    write_mnist_idx(tmp_path, arrays, gz=False)
    file = tmp_path / "t10k-images-idx3-ubyte"
    cut = file.read_bytes()[:-100]
    file.unlink()
    if gz:
        file = file.with_name(file.name + ".gz")
        file.write_bytes(gzip.compress(cut))
    else:
        file.write_bytes(cut)
    with pytest.raises(DataError, match="truncated") as error:
        mnist(tmp_path)
    assert_names_file_and_layout(error, file.name, IDX_NAMES)


def test_mnist_cut_gzip_stream(tmp_path):
    write_mnist_idx(tmp_path, mnist_arrays(), gz=True)
    file = tmp_path / "train-labels-idx1-ubyte.gz"
    file.write_bytes(file.read_bytes()[:-12])  # the gzip trailer and a bit of data gone
    with pytest.raises(DataError, match="cannot be read") as error:
        mnist(tmp_path)
    assert_names_file_and_layout(error, file.name, IDX_NAMES)


def test_mnist_extra_bytes(tmp_path):
    write_mnist_idx(tmp_path, mnist_arrays(), gz=False)
    file = tmp_path / "train-labels-idx1-ubyte"
    file.write_bytes(file.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="beyond") as error:
        mnist(tmp_path)
    assert_names_file_and_layout(error, file.name, IDX_NAMES)


def test_mnist_wrong_image_size(tmp_path):
    arrays = mnist_arrays()
    write_mnist_idx(tmp_path, arrays, gz=False)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((6, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"\(32, 32\), expected \(28, 28\)") as error:
        mnist(tmp_path)
    assert_names_file_and_layout(error, "train-images-idx3-ubyte", IDX_NAMES)


def test_mnist_label_count_mismatch_names_both_files(tmp_path):
    arrays = mnist_arrays()
    write_mnist_idx(tmp_path, arrays, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["y_test"][:2])
    with pytest.raises(DataError, match="2 labels.*t10k-images-idx3-ubyte declares 4 images"):
        mnist(tmp_path)


def test_mnist_labels_out_of_range(tmp_path):
    arrays = mnist_arrays()
    arrays["y_train"][0] = 12
    write_mnist_idx(tmp_path, arrays, gz=False)
    with pytest.raises(DataError, match=r", 12\], expected 0\.\.9") as error:
        mnist(tmp_path)
    assert_names_file_and_layout(error, "train-labels-idx1-ubyte", IDX_NAMES)


def test_mnist_missing_file(tmp_path):
    write_mnist_idx(tmp_path, mnist_arrays(), gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="not found") as error:
        mnist(tmp_path)
    assert_names_file_and_layout(error, str(tmp_path / "t10k-labels-idx1-ubyte"), IDX_NAMES)


def test_mnist_empty_folder_names_the_first_expected_file(tmp_path):
    with pytest.raises(DataError, match="not found") as error:
        fashion_mnist(tmp_path)
    assert_names_file_and_layout(error, "train-images-idx3-ubyte",
                                 IDX_NAMES + ["Zalando", "fashion-mnist"])


def test_mnist_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as error:
        mnist(missing)
    assert_names_file_and_layout(error, str(missing), IDX_NAMES + ["x_train", "y_test"])


def test_mnist_npz_missing_key_and_bad_shape(tmp_path):
    arrays = mnist_arrays()
    file = tmp_path / "mnist.npz"
    np.savez(file, **{k: v for k, v in arrays.items() if k != "y_test"})
    with pytest.raises(DataError, match="no array 'y_test'") as error:
        mnist(file)
    assert_names_file_and_layout(error, "mnist.npz", ["x_train", "y_train", "x_test", "y_test"])

    np.savez(file, **{**arrays, "x_test": np.zeros((4, 784), np.uint8)})
    with pytest.raises(DataError, match=r"'x_test'.*\(4, 784\), expected \(N, 28, 28\)"):
        mnist(file)


def test_mnist_npz_not_a_zip(tmp_path):
    file = tmp_path / "mnist.npz"
    file.write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(DataError, match="cannot be read") as error:
        mnist(file)
    assert_names_file_and_layout(error, "mnist.npz", IDX_NAMES)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_mnist_header_declaring_billions_is_truncated_not_out_of_memory(tmp_path, gz):
    write_mnist_idx(tmp_path, mnist_arrays(), gz=False)
    file = tmp_path / "train-images-idx3-ubyte"
    data = bytearray(file.read_bytes())
    data[4:8] = (4_000_000_000).to_bytes(4, "big")
    file.unlink()
    if gz:
        file = file.with_name(file.name + ".gz")
    file.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    with pytest.raises(DataError, match="declares 4000000000 images"):
        mnist(tmp_path)


def test_mnist_works_with_a_torch_dataloader(tmp_path):
    torch = pytest.importorskip("torch")
    arrays = mnist_arrays(6, 4)
    train, _ = mnist(write_mnist_idx(tmp_path, arrays, gz=False))
    x, y = train[2]
    assert x.shape == (1, 28, 28) and y == int(arrays["y_train"][2])
    xb, yb = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert xb.shape == (4, 1, 28, 28) and yb.tolist() == arrays["y_train"][:4].tolist()


# --- CIFAR-10 ------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_round_trip(tmp_path, protocol):
    data = write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    train, test = cifar10(tmp_path / "cifar-10-batches-py")
    x_train = np.concatenate([data[f"data_batch_{i}"][0] for i in range(1, 6)])
    y_train = sum((data[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert train.inputs.shape == (10, 3, 32, 32) and test.inputs.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(train.inputs, x_train.reshape(-1, 3, 32, 32).astype(np.float32) / 255)
    np.testing.assert_array_equal(train.labels, y_train)
    np.testing.assert_array_equal(test.labels, data["test_batch"][1])
    assert train.classes == CIFAR_CLASSES and train.name == "cifar10:train"
    # channel planes: the first 1024 values of a row are the red image, row-major
    np.testing.assert_array_equal(test.inputs[1, 0, 0, :3],
                                  data["test_batch"][0][1, :3].astype(np.float32) / 255)
    np.testing.assert_array_equal(test.inputs[1, 2, 31, 31],
                                  np.float32(data["test_batch"][0][1, 3071]) / 255)


def test_cifar10_accepts_the_parent_folder_and_a_limit(tmp_path):
    data = write_cifar(tmp_path / "cifar-10-batches-py")
    train, test = cifar10(tmp_path, limit=3)  # spans data_batch_1 and data_batch_2
    assert (len(train), len(test)) == (3, 3)
    expected = np.concatenate([data["data_batch_1"][0], data["data_batch_2"][0][:1]])
    np.testing.assert_array_equal(train.inputs, expected.reshape(-1, 3, 32, 32).astype(np.float32) / 255)


def test_cifar10_missing_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match="not found") as error:
        cifar10(tmp_path)
    assert_names_file_and_layout(error, "data_batch_4", CIFAR_NAMES + ["cifar-10-python.tar.gz"])


def test_cifar10_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist") as error:
        cifar10(tmp_path / "cifar-10-batches-py")
    assert_names_file_and_layout(error, "cifar-10-batches-py", CIFAR_NAMES)


def test_cifar10_archive_says_extract(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError, match="extract it first") as error:
        cifar10(archive)
    assert_names_file_and_layout(error, "cifar-10-python.tar.gz", CIFAR_NAMES)


def test_cifar10_truncated_pickle(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    file = folder / "test_batch"
    file.write_bytes(file.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot be read") as error:
        cifar10(folder)
    assert_names_file_and_layout(error, "test_batch", CIFAR_NAMES)


def test_cifar10_refuses_pickles_that_would_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Payload()}, f)
    with pytest.raises(DataError, match="refused to load") as error:
        cifar10(folder)
    assert not marker.exists()
    assert_names_file_and_layout(error, "data_batch_1", CIFAR_NAMES)


def test_cifar10_wrong_data_shape_and_cifar100(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"shape \(2, 1024\), expected .*\(N, 3072\)") as error:
        cifar10(folder)
    assert_names_file_and_layout(error, "data_batch_2", CIFAR_NAMES)

    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]}, f)
    with pytest.raises(DataError, match="CIFAR-100"):
        cifar10(folder)

    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, f)
    with pytest.raises(DataError, match="2 images but 1 labels"):
        cifar10(folder)


def test_cifar10_bad_meta(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"a", b"b"]}, f)
    with pytest.raises(DataError, match="label_names") as error:
        cifar10(folder)
    assert_names_file_and_layout(error, "batches.meta", CIFAR_NAMES)


# --- image folders -------------------------------------------------------------------------

def write_image_folder(root: Path, size=(5, 4)) -> dict[str, list[np.ndarray]]:
    """Classes written out of order (b before a) so that sorting is what orders them."""
    images = {}
    for name, n in (("b_dog", 2), ("a_cat", 3)):
        images[name] = [write_png(root / name / f"{i:03d}.png",
                                  RNG.integers(0, 256, (*size, 3), dtype=np.uint8))
                        for i in range(n)]
    (root / "a_cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return images


def test_image_folder_round_trip(tmp_path):
    images = write_image_folder(tmp_path)
    ds = image_folder(tmp_path)
    assert ds.classes == ["a_cat", "b_dog"]
    assert ds.inputs.shape == (5, 3, 5, 4) and ds.inputs.dtype == np.float32
    np.testing.assert_array_equal(ds.labels, [0, 0, 0, 1, 1])
    expected = np.stack(images["a_cat"] + images["b_dog"]).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(ds.inputs, expected.astype(np.float32) / 255)
    assert ds.extra["file"].tolist() == [f"a_cat/{i:03d}.png" for i in range(3)] + \
        [f"b_dog/{i:03d}.png" for i in range(2)]
    assert ds.name == f"image_folder:{tmp_path.name}"
    # subsets carry the file names along
    assert ds.subset([4]).extra["file"].tolist() == ["b_dog/001.png"]


def test_image_folder_grayscale_resize_and_limit(tmp_path):
    write_image_folder(tmp_path)
    grey = write_png(tmp_path / "c_bird" / "000.png", np.full((5, 4), 200, np.uint8))
    ds = image_folder(tmp_path, grayscale=True, limit=2)
    assert ds.inputs.shape == (5, 1, 5, 4)  # at most 2 per class: 2 + 2 + 1
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(ds.inputs[-1, 0], grey.astype(np.float32) / 255)
    resized = image_folder(tmp_path, size=(8, 6))
    assert resized.inputs.shape == (6, 3, 8, 6)
    assert image_folder(tmp_path, size=3).input_shape == (3, 3, 3)


def test_image_folder_inconsistent_sizes_name_both_files(tmp_path):
    write_image_folder(tmp_path)
    write_png(tmp_path / "b_dog" / "002.png", np.zeros((7, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"7x4.*5x4.*size=\(5, 4\)") as error:
        image_folder(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "b_dog" / "002.png") in message
    assert str(tmp_path / "a_cat" / "000.png") in message
    assert "one sub-folder per class" in message
    assert image_folder(tmp_path, size=(5, 4)).inputs.shape == (6, 3, 5, 4)


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(DataError, match="does not exist") as error:
        image_folder(tmp_path / "photos")
    assert_names_file_and_layout(error, "photos", ["one sub-folder per class", "ImageFolder"])
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError, match="has no class sub-folders") as error:
        image_folder(tmp_path / "photos")
    assert_names_file_and_layout(error, "photos", ["one sub-folder per class"])
    (tmp_path / "photos" / "cats").mkdir()
    with pytest.raises(DataError, match="holds no image files") as error:
        image_folder(tmp_path / "photos")
    assert_names_file_and_layout(error, "cats", [".png", ".jpg"])


def test_image_folder_unreadable_image(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "a_cat" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="cannot be read as an image") as error:
        image_folder(tmp_path)
    assert_names_file_and_layout(error, "broken.png", ["one sub-folder per class"])


@pytest.mark.parametrize("size", [(0, 4), (1, 2, 3), "big", 2.5])
def test_image_folder_rejects_a_bad_size(tmp_path, size):
    write_image_folder(tmp_path)
    with pytest.raises(DataError, match="size="):
        image_folder(tmp_path, size=size)


# --- load() for file sources ---------------------------------------------------------------

def test_load_file_sources(tmp_path):
    arrays = mnist_arrays(6, 4)
    write_mnist_idx(tmp_path / "m", arrays, gz=True)
    for train, test in (load("mnist", path=tmp_path / "m", limit=5),
                        load(f"MNIST:{tmp_path / 'm'}", limit=5)):
        assert (len(train), len(test)) == (5, 4) and train.name == "mnist:train"
    assert load("fashion-mnist", path=tmp_path / "m")[0].classes == FASHION_MNIST_CLASSES
    write_cifar(tmp_path / "c" / "cifar-10-batches-py")
    assert len(load("cifar-10", path=tmp_path / "c")[1]) == 3


def test_load_image_folder_is_split_and_keeps_index(tmp_path):
    for name in ("a", "b"):
        for i in range(4):
            write_png(tmp_path / name / f"{i}.png", np.full((2, 2), 10 * i, np.uint8))
    train, test = load("image_folder", path=tmp_path, grayscale=True, test_fraction=0.5, seed=3)
    assert (len(train), len(test)) == (4, 4)
    np.testing.assert_array_equal(np.bincount(test.labels), [2, 2])
    full = image_folder(tmp_path, grayscale=True)
    np.testing.assert_array_equal(test.inputs, full.inputs[test.index])


def test_load_file_source_errors(tmp_path):
    with pytest.raises(DataError, match="Pass path=.*nothing is downloaded"):
        load("cifar10")
    with pytest.raises(DataError, match="no option 'limt'.*Did you mean 'limit'"):
        load("mnist", path=tmp_path, limt=3)
    with pytest.raises(DataError, match="two paths"):
        load(f"mnist:{tmp_path}", path=tmp_path)

