"""Fortunes-style files for the text tests: one file per topic, entries separated by ``%`` lines.
Each entry mixes its topic's words with shared filler words, so a classifier can learn the topic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOPICS = {  # each category has its own words; every text mixes in shared filler words
    "kittens": ["purr", "whiskers", "meow", "paws", "yarn", "kitten"],
    "rockets": ["launch", "orbit", "thrust", "booster", "payload", "countdown"],
    "recipes": ["flour", "oven", "simmer", "butter", "garlic", "whisk"],
}
FILLER = ["the", "a", "and", "of", "we", "it", "was", "very", "then", "so"]


def write_topic_fortunes(root: Path, entries_per_topic: int, seed: int,
                         words: tuple[int, int] = (4, 12)) -> Path:
    """Write ``root/<topic>`` for each topic; an entry has ``words`` [low, high) random words (40%
    from its topic), then one topic word and a unique token ``n<index>``."""
    rng = np.random.default_rng(seed)
    for topic, topic_words in TOPICS.items():
        entries = []
        for index in range(entries_per_topic):
            text = [str(rng.choice(topic_words if rng.random() < 0.4 else FILLER))
                    for _ in range(int(rng.integers(*words)))]
            entries.append(" ".join([*text, topic_words[index % len(topic_words)], f"n{index}"]))
        (root / topic).write_text("\n%\n".join(entries) + "\n%\n")
    return root
