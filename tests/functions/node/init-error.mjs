// A function whose module fails while loading: the runtime reports /runtime/init/error.
throw new TypeError("cannot start: configuration missing");
