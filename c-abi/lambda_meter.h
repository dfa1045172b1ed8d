/*
 * lambda-meter public C ABI.
 *
 * liblambda_meter.so is loaded with LD_PRELOAD by the /opt/lambda-meter wrapper and needs no
 * calls from the host. These functions let a runtime or a test ask what it is doing.
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

#ifdef __cplusplus
}
#endif

#endif /* LAMBDA_METER_H */
