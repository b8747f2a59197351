//! Portico API server.
