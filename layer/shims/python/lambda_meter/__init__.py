"""Custom metrics for the invoke in progress, written in lambda-meter's record of it.

    import lambda_meter
    lambda_meter.add_metric(name="OrdersPlaced", unit="Count", value=1)
    lambda_meter.add_dimension(name="tenant", value="acme")
    lambda_meter.add_metadata(key="orderId", value=1001)

The same calls as Powertools' Metrics (add_metric, add_dimension, add_metadata), and as
aws-embedded-metrics (put_metric, put_dimensions, set_property); no package to install, no
flush: the values go into the invoke's own record. A handler written for Powertools moves over
by changing its import alone:

    from lambda_meter import Metrics, MetricUnit   # was: from aws_lambda_powertools import ...
    metrics = Metrics()   # the service: POWERTOOLS_SERVICE_NAME, as Powertools reads it
    @metrics.log_metrics
    def handler(event, context):
        metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=1)

This module is in the lambda-meter layer (/opt/python, on the Python runtime's path; the
wrapper also appends it to PYTHONPATH). It calls the C ABI of the preloaded library
(lambda_meter.h) through ctypes. Where the layer is absent or the library is not metering,
every call does nothing and returns INACTIVE or ABSENT, so the same code runs anywhere.
Each call returns the library's status code (OK == 0); it never raises.
"""

import ctypes
import enum
import functools
import json
import os

__all__ = [
    "add_metric",
    "add_dimension",
    "add_metadata",
    "put_metric",
    "put_dimensions",
    "set_property",
    "available",
    "Metrics",
    "MetricUnit",
    "MetricResolution",
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


class MetricUnit(enum.Enum):
    """Powertools' MetricUnit: CloudWatch's unit names."""

    Seconds = "Seconds"
    Microseconds = "Microseconds"
    Milliseconds = "Milliseconds"
    Bytes = "Bytes"
    Kilobytes = "Kilobytes"
    Megabytes = "Megabytes"
    Gigabytes = "Gigabytes"
    Terabytes = "Terabytes"
    Bits = "Bits"
    Kilobits = "Kilobits"
    Megabits = "Megabits"
    Gigabits = "Gigabits"
    Terabits = "Terabits"
    Percent = "Percent"
    Count = "Count"
    BytesPerSecond = "Bytes/Second"
    KilobytesPerSecond = "Kilobytes/Second"
    MegabytesPerSecond = "Megabytes/Second"
    GigabytesPerSecond = "Gigabytes/Second"
    TerabytesPerSecond = "Terabytes/Second"
    BitsPerSecond = "Bits/Second"
    KilobitsPerSecond = "Kilobits/Second"
    MegabitsPerSecond = "Megabits/Second"
    GigabitsPerSecond = "Gigabits/Second"
    TerabitsPerSecond = "Terabits/Second"
    CountPerSecond = "Count/Second"
    NoUnit = "None"


class MetricResolution(enum.Enum):
    """Powertools' MetricResolution. lambda-meter's records declare standard resolution."""

    Standard = 60
    High = 1


class Metrics:
    """Powertools' Metrics, over this module: the values go into lambda-meter's record of the
    invoke, which the library writes (nothing to flush).

    The default dimensions are given at the start of each invoke the log_metrics decorator
    wraps, as Powertools adds them to each flush. The service is the library's own `service`
    dimension, on every record: POWERTOOLS_SERVICE_NAME (or LAMBDA_METER_SERVICE), read when
    the runtime starts; a service named only in code is not used. The namespace is
    lambda-meter's (LAMBDA_METER_NAMESPACE) for every metric; a resolution is accepted and not
    used; the decorator's options are accepted: the record has ColdStart already, and no
    metric is not an error. Each call returns the status code of the module's function."""

    def __init__(self, service=None, namespace=None, *args, **kwargs):
        self.service = service or os.environ.get("POWERTOOLS_SERVICE_NAME") or None
        self.namespace = namespace
        self.default_dimensions = {}

    def add_metric(self, name, unit, value, resolution=60):
        return add_metric(name, unit, value)

    def add_dimension(self, name, value):
        return add_dimension(name, value)

    def add_dimensions(self, **dimensions):
        return put_dimensions(dimensions)

    def add_metadata(self, key, value):
        return add_metadata(key, value)

    def set_default_dimensions(self, **dimensions):
        self.default_dimensions.update(dimensions)
        return put_dimensions(dimensions)

    def clear_default_dimensions(self):
        self.default_dimensions.clear()

    def clear_metrics(self):
        """Values already given stay on the invoke's record."""

    def flush_metrics(self, raise_on_empty_metrics=False):
        """The library writes the record when the invoke ends."""

    def set_timestamp(self, timestamp):
        """The record's timestamp is the invoke's."""

    def _start_invoke(self, extra=None):
        dimensions = dict(self.default_dimensions)
        dimensions.update(extra or {})
        if dimensions:
            put_dimensions(dimensions)

    def log_metrics(self, lambda_handler=None, capture_cold_start_metric=False,
                    raise_on_empty_metrics=False, default_dimensions=None, **kwargs):
        """Decorates a handler, with or without arguments, as Powertools' does."""
        if lambda_handler is None:
            return functools.partial(self.log_metrics,
                                     default_dimensions=default_dimensions)

        @functools.wraps(lambda_handler)
        def decorated(event, context, *args, **kw):
            self._start_invoke(default_dimensions)
            return lambda_handler(event, context, *args, **kw)

        return decorated
