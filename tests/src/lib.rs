//! attune-tests: end-to-end tests live in `tests/tests/`. This library will hold
//! the harness that starts the real relay binary and drives real clients.
