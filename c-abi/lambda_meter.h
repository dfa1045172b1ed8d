/*
 * lambda-meter public C ABI.
 *
 * liblambda_meter.so is loaded with LD_PRELOAD by the /opt/lambda-meter wrapper and needs no
 * calls from the host. These functions let a runtime or a test ask what it is doing, and let a
 * function add its own metrics to its invoke's record. The library is preloaded: look the
 * functions up with dlsym(RTLD_DEFAULT, ...) so that the same code runs without the layer.
 */
#ifndef LAMBDA_METER_H
#define LAMBDA_METER_H

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version, e.g. "0.1.0". Static storage; never free it. */
const char *lambda_meter_version(void);

/* 1 when this process is being metered (it has a usable AWS_LAMBDA_RUNTIME_API and the library
 * is enabled), 0 when every hook passes straight through. */
int lambda_meter_active(void);

/*
 * Custom metrics, dimensions and properties, written in the record of the invoke they belong
 * to: the invoke whose event the calling thread read, else the only invoke open in the
 * process. Given while no invoke is open (during init, or after a result was sent), they go to
 * the record of the next invoke that starts, or to the init error's record if init fails.
 * Custom metrics are declared in a directive of their own: the function's first dimension set
 * followed by the custom dimensions, so custom dimensions never apply to built-in metrics.
 *
 * Every call returns at once with one of the status codes below. It never aborts, never waits
 * on the host's I/O, and is safe from any thread (inside a signal handler it returns
 * LAMBDA_METER_BUSY and keeps nothing). Strings are copied; the caller keeps ownership.
 *
 * Per record at most 30 custom metrics of 100 values each, 9 custom dimensions and 30
 * properties. Names and keys are 1 to 255 bytes of UTF-8 without control characters, and none
 * of the record's own members (built-in metric names, requestId, traceId, service, runtime,
 * errorType, FunctionName, ... and _aws); a name is a metric, a dimension or a property, once.
 */
#define LAMBDA_METER_OK 0         /* kept for the invoke in progress */
#define LAMBDA_METER_PENDING 1    /* no invoke open: kept for the next one (or the init error) */
#define LAMBDA_METER_INACTIVE 2   /* the library does not meter this process: nothing kept */
#define LAMBDA_METER_BAD_NAME -1  /* empty, too long, not UTF-8, control character, or taken */
#define LAMBDA_METER_BAD_VALUE -2 /* not finite; empty or over 1024 bytes; not one JSON value */
#define LAMBDA_METER_BAD_UNIT -3  /* not one of CloudWatch's units (names are case-sensitive) */
#define LAMBDA_METER_LIMIT -4     /* a per-record limit above is reached */
#define LAMBDA_METER_AMBIGUOUS -5 /* several invokes open, none read on this thread */
#define LAMBDA_METER_BUSY -6      /* called from a signal handler: nothing kept */
#define LAMBDA_METER_NULL -7      /* a required pointer is NULL */

/* Adds value to metric `name`. Given several times in one invoke, the values form an EMF value
 * array (the first unit given stays). `unit`: "Count", "Milliseconds", "Bytes", "Percent", ...
 * (CloudWatch's units), or NULL for "None". */
int lambda_meter_metric(const char *name, double value, const char *unit);

/* Sets custom dimension `key` to `value` (1 to 1024 bytes); given again, the last value stays. */
int lambda_meter_dimension(const char *key, const char *value);

/* Sets property `key` to `json_value`, one JSON value ("42", "\"text\"", "{\"id\":7}"), stored
 * compact (at most 4096 bytes); given again, the last value stays. Properties are not metrics:
 * they cost log bytes, not custom metrics, and are queryable with Logs Insights. */
int lambda_meter_property(const char *key, const char *json_value);

#ifdef __cplusplus
}
#endif

#endif /* LAMBDA_METER_H */
