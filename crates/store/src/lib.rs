//! Portico's storage layer.
