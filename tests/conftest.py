"""Test-session settings: the tests never reach the network (CI machines have none but PyPI)."""

import os

# Hugging Face libraries (the sentence-transformers reference of the MiniLM test) must read only
# the local files they are given, never ask the Hub for updates.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
