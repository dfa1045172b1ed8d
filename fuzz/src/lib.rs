//! lambda-meter's pure core, compiled from the library's own sources for the fuzz targets. The
//! library itself is a cdylib whose hooks must never be linked into another binary, so the
//! pure modules are included by path instead: the same code the library runs.

#[path = "../../src/custom.rs"]
pub mod custom;
#[path = "../../src/emf.rs"]
pub mod emf;
#[path = "../../src/engine.rs"]
pub mod engine;
#[path = "../../src/fdtable.rs"]
pub mod fdtable;
#[path = "../../src/handoff.rs"]
pub mod handoff;
#[path = "../../src/http.rs"]
pub mod http;
#[path = "../../src/journal.rs"]
pub mod journal;
#[path = "../../src/metrics.rs"]
pub mod metrics;
#[path = "../../src/props.rs"]
pub mod props;
#[path = "../../src/runtime_api.rs"]
pub mod runtime_api;
#[path = "../../src/settings.rs"]
pub mod settings;
#[path = "../../src/text.rs"]
pub mod text;
#[path = "../../src/tracker.rs"]
pub mod tracker;
