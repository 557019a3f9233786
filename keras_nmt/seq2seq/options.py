"""The named choices of the encoder-decoder, in one place.

Plain Python (no Keras import), so the command line can offer them without
loading TensorFlow.
"""

ATTENTIONS = ("bahdanau", "dot", "general", "scaled_dot")
STYLES = ("bahdanau", "luong")
CELLS = ("lstm", "gru")


def check_choice(owner: str, name: str, value, choices) -> None:
    """Raise `ValueError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"{owner}: `{name}` must be one of {tuple(choices)}. "
            f"Received: {name}={value!r}."
        )
