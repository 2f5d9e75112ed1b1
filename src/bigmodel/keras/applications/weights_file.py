"""Where ``keras.applications`` finds Keras's published ImageNet weights: each file's URL and
hash, downloaded once into ``~/.keras/models`` with a hash check. The files are legacy Keras HDF5;
``bigmodel.keras.legacy_weights`` reads them.
"""

from __future__ import annotations

from bigmodel.keras.utils_files import get_file

#: where Keras publishes the weight files (EfficientNet's are outside ``tensorflow/``)
STORAGE_URL = "https://storage.googleapis.com/"
KERAS_APPLICATIONS = "tensorflow/keras-applications"


class WeightsFile:
    """One published weight file: its path under :data:`STORAGE_URL` and its hash (MD5 or
    SHA-256; None where Keras has none: then the file is checked only by loading it)."""

    def __init__(self, path: str, file_hash: str | None = None, file_name: str | None = None):
        self.path, self.file_hash = path, file_hash
        # the name in the cache: Keras's (which for NASNet differs from the URL's)
        self.file_name = file_name or path.rsplit("/", 1)[-1]

    @property
    def url(self) -> str:
        return STORAGE_URL + self.path

    def fetch(self) -> str:
        """The local path of the file, downloaded into ``~/.keras/models`` when not cached.

        Raises:
            DataFileError: the download failed or its hash did not match (nothing is kept).
        """
        return get_file(self.file_name, self.url, cache_subdir="models",
                        file_hash=self.file_hash)


def keras_file(family: str, file_name: str, file_hash: str | None = None,
               cache_name: str | None = None) -> WeightsFile:
    """A file of ``tensorflow/keras-applications/<family>/``, where most families' files are."""
    return WeightsFile(f"{KERAS_APPLICATIONS}/{family}/{file_name}", file_hash, cache_name)


