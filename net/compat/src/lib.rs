//! Nothing here: see `tests/`, which drive a ringmq broker with rocketmq-client-rust 1.0.0.
