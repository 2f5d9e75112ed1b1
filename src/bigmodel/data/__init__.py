"""Data: IDX files, Fashion-MNIST/MNIST with a documented search order, in-memory batching."""

from bigmodel.data.datasets import download_dataset, find_datasets, load_dataset
from bigmodel.data.idx import read_idx, write_idx

__all__ = ["download_dataset", "find_datasets", "load_dataset", "read_idx", "write_idx"]
