"""Give objects another class for the length of a `with` block (used while a step is traced)."""

import contextlib


@contextlib.contextmanager
def swapped_class(objects: list, temporary_class: type):
    """While open, every object in `objects` is an instance of `temporary_class`; afterwards each
    is back to the class it had. `temporary_class` must be a subclass adding no state, so the
    swap changes behaviour only (how a Dropout layer or a SeedGenerator draws its numbers).

    Yields:
        The number of objects switched.
    """
    original_classes = [type(item) for item in objects]
    for item in objects:
        item.__class__ = temporary_class
    try:
        yield len(objects)
    finally:
        for item, original in zip(objects, original_classes):
            item.__class__ = original
