//! Issue 14 (docs/trust-v1.md): tests of this area are added here.
