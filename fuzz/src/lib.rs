//! lambda-meter's fuzz targets run the property checks of its pure core (`lambda_meter_core`,
//! built with its `props` feature): the same code the library runs.

pub use lambda_meter_core::props;
