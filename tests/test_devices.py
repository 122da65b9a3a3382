"""devices: how a device is described to the user."""

from napari_resolve.devices import describe_device


def test_cpu_description_counts_threads_in_the_singular_and_plural():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert describe_device("cpu") == "cpu (1 thread)"
        torch.set_num_threads(2)
        assert describe_device("cpu") == "cpu (2 threads)"
    finally:
        torch.set_num_threads(before)
