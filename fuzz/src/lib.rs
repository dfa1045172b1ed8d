//! lambda-meter's pure core, compiled from the library's own sources for the fuzz targets. The
//! library itself is a cdylib whose hooks must never be linked into another binary, so the
//! pure modules are included by path instead: the same code the library runs.

#[path = "../../src/core/custom.rs"]
pub mod custom;
#[path = "../../src/core/emf.rs"]
pub mod emf;
#[path = "../../src/core/engine.rs"]
pub mod engine;
#[path = "../../src/core/fdtable.rs"]
pub mod fdtable;
#[path = "../../src/glue/handoff.rs"]
pub mod handoff;
#[path = "../../src/core/http.rs"]
pub mod http;
#[path = "../../src/core/journal.rs"]
pub mod journal;
#[path = "../../src/core/metrics.rs"]
pub mod metrics;
#[path = "../../src/props.rs"]
pub mod props;
#[path = "../../src/core/runtime_api.rs"]
pub mod runtime_api;
#[path = "../../src/core/settings.rs"]
pub mod settings;
#[path = "../../src/core/text.rs"]
pub mod text;
#[path = "../../src/core/tracker.rs"]
pub mod tracker;
