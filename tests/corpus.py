"""Small labelled review texts written for the tests: clear polarity words in varied sentences."""

import random

POSITIVE = ["wonderful", "great", "moving", "brilliant", "delightful", "superb", "charming", "excellent"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "tedious", "horrible", "clumsy", "dreadful"]
NEUTRAL = ["film", "book", "story", "plot", "acting", "ending", "cast", "script"]
FRAMES = ["the {n} was {a} .", "a {a} {n} , really {a} .", "i found the {n} {a} and the {m} {a} .",
          "honestly the {n} felt {a} from start to end .", "{a} ! what a {a} {n} ."]


def reviews(n: int, seed: int = 0, classes: int = 2) -> tuple[list[str], list[int]]:
    """n texts with labels 0 (negative), 1 (positive) and, for classes=3, 2 (neutral: no polarity word)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % classes
        words = {0: NEGATIVE, 1: POSITIVE, 2: ["okay", "average", "plain", "ordinary"]}[label]
        frame = rng.choice(FRAMES)
        texts.append(frame.format(n=rng.choice(NEUTRAL), m=rng.choice(NEUTRAL), a=rng.choice(words)))
        labels.append(label)
    return texts, labels
