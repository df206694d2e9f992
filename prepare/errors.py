"""The error `scalelab data prepare` reports as one line: the input or option at fault, and why."""


class PrepareError(ValueError):
    pass
