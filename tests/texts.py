"""The small text every GPT test trains on: three rhyming lines in a seeded random order."""

import random


def rhymes(characters: int = 1200, seed: int = 0) -> str:
    lines = ["the cat sat on the mat.\n", "a dog ran to the log.\n", "we sing of the spring!\n"]
    rng = random.Random(seed)
    text = ""
    while len(text) < characters:
        text += rng.choice(lines)
    return text[:characters]

