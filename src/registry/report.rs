//! (being written: see docs/registry-v1.md)
