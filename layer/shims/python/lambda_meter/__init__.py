"""Custom metrics for the invoke in progress, written in lambda-meter's record of it.

    import lambda_meter
    lambda_meter.add_metric(name="OrdersPlaced", unit="Count", value=1)
    lambda_meter.add_dimension(name="tenant", value="acme")
    lambda_meter.add_metadata(key="orderId", value=1001)

The same calls as Powertools' Metrics (add_metric, add_dimension, add_metadata), and as
aws-embedded-metrics (put_metric, put_dimensions, set_property), so moving over is a one-line
change; no package to install, no flush: the values go into the invoke's own record.

This module is in the lambda-meter layer (/opt/python, on the Python runtime's path; the
wrapper also appends it to PYTHONPATH). It calls the C ABI of the preloaded library
(lambda_meter.h) through ctypes. Where the layer is absent or the library is not metering,
every call does nothing and returns INACTIVE or ABSENT, so the same code runs anywhere.
Each call returns the library's status code (OK == 0); it never raises.
"""

import ctypes
import json

__all__ = [
    "add_metric",
    "add_dimension",
    "add_metadata",
    "put_metric",
    "put_dimensions",
    "set_property",
    "available",
]

OK = 0
PENDING = 1
INACTIVE = 2
BAD_NAME = -1
BAD_VALUE = -2
BAD_UNIT = -3
LIMIT = -4
AMBIGUOUS = -5
BUSY = -6
NULL = -7
# No lambda-meter library in this process (the layer is absent): nothing was kept.
ABSENT = -100


def _bind():
    try:
        process = ctypes.CDLL(None)
        metric = process.lambda_meter_metric
        dimension = process.lambda_meter_dimension
        prop = process.lambda_meter_property
    except (OSError, AttributeError):
        return None
    metric.argtypes = (ctypes.c_char_p, ctypes.c_double, ctypes.c_char_p)
    metric.restype = ctypes.c_int
    dimension.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    dimension.restype = ctypes.c_int
    prop.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    prop.restype = ctypes.c_int
    return metric, dimension, prop


_abi = _bind()


def available():
    """Whether the lambda-meter library is in this process."""
    return _abi is not None


def _text(value):
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def add_metric(name, unit="None", value=0.0):
    """Adds value to metric name (a value array when given again in one invoke). unit is a
    CloudWatch unit name ("Count", "Milliseconds", ...) or a Powertools MetricUnit."""
    if _abi is None:
        return ABSENT
    unit = getattr(unit, "value", unit)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return BAD_VALUE
    return _abi[0](_text(name), number, None if unit is None else _text(unit))


def add_dimension(name, value):
    """Sets custom dimension name to value for this invoke's custom metrics."""
    if _abi is None:
        return ABSENT
    return _abi[1](_text(name), _text(value))


def add_metadata(key, value):
    """Sets property key to value (anything json.dumps takes); not a metric."""
    if _abi is None:
        return ABSENT
    try:
        encoded = json.dumps(value, default=str)
    except (TypeError, ValueError):
        return BAD_VALUE
    return _abi[2](_text(key), encoded.encode("utf-8"))


def put_metric(key, value, unit="None"):
    """aws-embedded-metrics' spelling of add_metric."""
    return add_metric(key, unit, value)


def put_dimensions(dimensions):
    """aws-embedded-metrics' spelling: a dict of dimension keys and values. Returns the first
    status that is not OK, else OK."""
    status = OK
    for k, v in dict(dimensions).items():
        s = add_dimension(k, v)
        if status in (OK, PENDING):
            status = s
    return status


def set_property(key, value):
    """aws-embedded-metrics' spelling of add_metadata."""
    return add_metadata(key, value)
