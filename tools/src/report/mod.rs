//! Saved runs and the comparison report.
//!
//! | file | owns |
//! | --- | --- |
//! | `summary` | the JSON summary of one run |
//! | `hgrm` | HdrHistogram percentile-distribution files: write and parse |
//! | `compare` | `ringmq compare`: the markdown table of two or more runs |
//! | `chart` | the latency-by-percentile chart (SVG and PNG) |

pub mod chart;
pub mod compare;
pub mod hgrm;
pub mod summary;
