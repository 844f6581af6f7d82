"""The Speech Commands 12-class convention used by every keyword-spotting set here."""

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
LABELS = (SILENCE, UNKNOWN, *KEYWORDS)

# Speech Commands v0.01's other words: they train and test the `_unknown_` class.
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)


def label_index(word: str) -> int:
    """Class index of a spoken word (any non-keyword is `_unknown_`)."""
    if word == SILENCE:
        return 0
    if word in KEYWORDS:
        return LABELS.index(word)
    return 1

# The plant-disease classes (`tinydrift data plant`): a healthy leaf and four diseases by
# their visible sign. Folders of a PlantVillage-layout set carry these names.
PLANT_LABELS = ("healthy", "leaf_spot", "blight", "wilt", "mosaic")
PLANT_SIGNS = {
    "healthy": "no sign",
    "leaf_spot": "yellow chlorotic spots",
    "blight": "brown necrotic patches with darker rims",
    "wilt": "a curled, drooping, dull leaf",
    "mosaic": "light and dark green mottling",
}
