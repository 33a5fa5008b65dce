//! Nothing to build: the end-to-end tests live in `tests/`, and drive the local environment
//! that `local/devenv.py test` starts.
