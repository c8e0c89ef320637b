import torch

from musicsearch.device import pick_device


def test_pick_device():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        assert pick_device("auto") in {"mps", "cpu"}
