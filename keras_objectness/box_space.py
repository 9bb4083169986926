"""Placeholder: `BoxSpace` lands in the next commit."""


class BoxSpace:
    pass
