"""The PyTorch checkpoint reader: a file PyTorch itself saved, both layouts, strided tensors, and
pickles that try to run code (refused by name, nothing runs)."""

import os
import pickle

import numpy as np
import pytest
from formats import TensorView, pickle_archive, torch_save

from edgebnn.models.torch_checkpoint import CheckpointError, read_checkpoint, read_object


def test_reads_the_checkpoint_pytorch_saved(bnext_authors):
    checkpoint, archive = read_checkpoint(bnext_authors / "bnext-tiny-w025-epoch511.pth.tar")
    try:
        tensors = checkpoint.tensors
        assert (checkpoint.layout, checkpoint.epoch, len(tensors)) == ("training dict", 511, 661)
        assert not any(k.startswith("module.") for k in tensors)
        assert tensors["feature.0.conv1.weight"].shape == (8, 3, 3, 3)
        assert tensors["fc.weight"].shape == (1000, 256)
        # The fixture's README: every binary conv's temperature is 0.9**511.
        temperature = tensors["feature.1.Attention.binary_conv.temperature"].numpy()
        assert temperature.dtype == np.float32 and temperature == pytest.approx(0.9**511, rel=1e-5)
        assert tensors["feature.0.bn1.num_batches_tracked"].numpy().dtype == np.int64
        gammas = tensors["feature.0.bn1.weight"].numpy()
        assert np.all((gammas >= 0.1) & (gammas < 0.3))  # the README's BN gammas
    finally:
        archive.close()


@pytest.mark.parametrize("layout", ["state_dict", "training dict"])
def test_bare_state_dict_or_the_training_script_dict_with_module_prefixes(tmp_path, layout):
    weights = {"module.conv.weight": np.arange(24, dtype="float32").reshape(2, 3, 2, 2),
               # a transposed view: stride (1, 4) over a storage starting at element 2
               "module.t": TensorView(np.arange(20, dtype="float32"), (4, 3), (1, 4), offset=2),
               "module.bn.num_batches_tracked": np.array(7, dtype="int64")}
    saved = weights if layout == "state_dict" else {"epoch": 9, "state_dict": weights, "best_top1_acc": 0.5}
    checkpoint, archive = read_checkpoint(torch_save(tmp_path / "w.pth.tar", saved))
    with archive:
        assert checkpoint.layout == layout and checkpoint.epoch == (9 if layout == "training dict" else None)
        assert set(checkpoint.tensors) == {"conv.weight", "t", "bn.num_batches_tracked"}
        np.testing.assert_array_equal(checkpoint.tensors["conv.weight"].numpy(), weights["module.conv.weight"])
        np.testing.assert_array_equal(checkpoint.tensors["t"].numpy(), np.arange(2, 14).reshape(3, 4).T)
        assert checkpoint.tensors["bn.num_batches_tracked"].numpy() == 7


class RunsCode:
    """What an attacker pickles: unpickling calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["top", "inside the state_dict"])
def test_a_pickle_that_runs_code_is_refused_by_name_and_nothing_runs(tmp_path, where):
    marker = tmp_path / "ran"
    payload = RunsCode(marker)
    path = pickle_archive(tmp_path / "evil.pth.tar",
                          payload if where == "top" else {"state_dict": {"fc.weight": payload}})
    with pytest.raises(CheckpointError, match=r"the global posix\.system.*Nothing was run"):
        read_object(path)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("__builtin__", "exec"), ("subprocess", "Popen"),
                                          ("torch", "load"), ("numpy", "load")])
def test_only_the_tensor_globals_resolve(tmp_path, module, name):
    # GLOBAL 'module name', MARK, 'x' , TUPLE, REDUCE, STOP: a call of module.name('x')
    data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"(X\x01\x00\x00\x00xtR."
    path = tmp_path / "c.pth"
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("c/data.pkl", data)
    with pytest.raises(CheckpointError, match=rf"the global {module}\.{name}\b"):
        read_object(path)


def test_a_legacy_or_foreign_file_is_named(tmp_path):
    legacy = tmp_path / "old.pth"
    legacy.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="legacy format"):
        read_object(legacy)
    other = tmp_path / "x.pth"
    other.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch ZIP checkpoint"):
        read_object(other)
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        read_checkpoint(pickle_archive(tmp_path / "empty.pth", {"epoch": 3}))
