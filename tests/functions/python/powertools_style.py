"""A handler written for Powertools' Metrics. With LAMBDA_METER_TEST_POWERTOOLS=1 it imports
Powertools itself, else lambda-meter's module: the import is the only difference
(tests/custom_metrics.rs runs it both ways, with POWERTOOLS_SERVICE_NAME set)."""

import os

if os.environ.get("LAMBDA_METER_TEST_POWERTOOLS") == "1":
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit
else:
    from lambda_meter import Metrics, MetricUnit

metrics = Metrics(namespace="Shop")


@metrics.log_metrics(capture_cold_start_metric=True, default_dimensions={"tier": "gold"})
def handler(event, context):
    for n in event.get("orders", []):
        metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=n)
    if "basket" in event:
        metrics.add_metric(name="BasketValue", unit=MetricUnit.NoUnit, value=event["basket"])
    metrics.add_metadata(key="orderId", value=event.get("id"))
    return {"orders": len(event.get("orders", []))}
