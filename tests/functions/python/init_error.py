"""A function module that fails while loading: awslambdaric reports /runtime/init/error."""

raise LookupError("cannot start: configuration missing")


def handler(event, context):  # never reached
    return event
