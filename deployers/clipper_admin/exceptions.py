"""The exceptions of Clipper's public API, with Clipper's texts."""


class ClipperException(Exception):
    """A Clipper operation failed; ``msg`` says what went wrong."""

    def __init__(self, msg, *args):
        self.msg = msg
        super(ClipperException, self).__init__(msg, *args)


class UnconnectedException(ClipperException):
    """A method that needs a running cluster was called before connecting."""

    def __init__(self, *args):
        message = (
            "No connection to Clipper cluster. Call ClipperConnection.connect to "
            "connect to an existing cluster or ClipperConnnection.start_clipper to "
            "create a new one")
        self.message = message
        super(UnconnectedException, self).__init__(message, *args)
