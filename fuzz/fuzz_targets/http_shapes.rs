#![no_main]
// The property checks of src/core/props.rs, fed by libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| lambda_meter_fuzz::props::http_shapes(data));
