/* A plugin that needs liblambda_meter.so and dep_close's library (in that order), and runs a
 * custom runtime's loop: lambda-meter is loaded with it, by dlopen, not preloaded. */
#include <stdlib.h>
#include <string.h>

#include "probe_runtime.h"

int dep_user_run(int invokes) {
    probe_api_from_env();
    for (int i = 0; i < invokes; i++) {
        next_event();
        respond("{\"ok\":true}");
    }
    return 0;
}
